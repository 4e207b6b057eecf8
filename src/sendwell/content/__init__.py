"""Content: sandboxed templates with region blocks, the compliance footer, compliance and readability lint, previews."""
