// Sendwell mail editor: three modes over one stored form, the HTML textarea (#html).
// Visual is GrapesJS with its newsletter preset (CSS inlined on export), rich text is pell,
// HTML is the textarea itself. Whatever the mode, the textarea holds the HTML that is saved,
// linted and previewed; without JavaScript it is all there is. A mode that would change the
// template code ({% … %}, {{ … }}) of the content refuses it and leaves the HTML as it was.
(function () {
  "use strict";
  var TOKENS = /\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}/g;

  function tokens(html) {
    return (html.match(TOKENS) || []).map(function (t) { return t.replace(/\s+/g, " "); }).sort().join("\n");
  }

  function setup() {
    var area = document.getElementById("html");
    var bar = document.getElementById("editor-bar");
    var config = document.getElementById("editor-config");
    if (!area || !bar || !config) return;
    var text = JSON.parse(config.textContent);
    var visualHolder = document.getElementById("visual-editor");
    var richHolder = document.getElementById("rich-editor");
    var note = document.getElementById("editor-note");
    var picker = document.getElementById("variable-picker");
    var form = area.form;
    var mode = "html";
    var visual = null;
    var rich = null;
    var richRange = null;
    var zh = (document.documentElement.lang || "").toLowerCase().indexOf("zh") === 0;

    area.parentNode.insertBefore(bar, area);
    bar.hidden = false;
    // The editors sit inside the campaign form: their buttons and Enter in their inputs must not submit it.
    [visualHolder, richHolder].forEach(function (holder) {
      holder.addEventListener("click", function (event) {
        var button = event.target.closest && event.target.closest("button");
        if (button && !button.getAttribute("type")) button.type = "button";
      }, true);
      holder.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && event.target.tagName === "INPUT") event.preventDefault();
      }, true);
    });

    function changed() {
      // The live lint listens for input on the form's fields.
      area.dispatchEvent(new Event("input", { bubbles: true }));
    }

    function visualHtml() {
      return visual.runCommand("gjs-get-inlined-html");
    }

    function startVisual() {
      if (typeof grapesjs === "undefined") return false;
      var preset = window["grapesjs-preset-newsletter"];
      preset = preset && (preset.default || preset);
      var messages = {};
      if (window.grapesjsLocaleZh) messages.zh = window.grapesjsLocaleZh;
      visualHolder.hidden = false;
      visual = grapesjs.init({
        container: visualHolder,
        height: "640px",
        storageManager: false,
        fromElement: false,
        components: area.value,
        cssIcons: "", // the default loads Font Awesome from a CDN; the admin loads nothing from outside
        telemetry: false, // GrapesJS would report each load to its makers
        i18n: { locale: zh ? "zh" : "en", localeFallback: "en", detectLocale: false, messages: messages },
        plugins: [function (editor) {
          preset(editor, {
            showStylesOnChange: true,
            block: function (id) { return text.blocks[id] ? { label: text.blocks[id] } : {}; }
          });
        }]
      });
      // Accessibility (axe): the canvas frame is named after the field it edits, and the
      // scrolling side panel can be reached with the keyboard.
      var nameParts = function () {
        var frame = visual && visual.Canvas.getFrameEl();
        if (frame && area.labels.length) frame.title = area.labels[0].firstChild.textContent.trim();
        var views = visualHolder.querySelector(".gjs-pn-views-container");
        if (views) views.tabIndex = 0;
      };
      nameParts();
      visual.on("load", nameParts);
      var before = tokens(area.value);
      if (tokens(visualHtml()) !== before) {
        stopVisual();
        note.textContent = text.kept;
        return false;
      }
      var timer = null;
      visual.on("update", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { area.value = visualHtml(); changed(); }, 300);
      });
      return true;
    }

    function stopVisual() {
      if (!visual) return;
      visual.destroy();
      visual = null;
      visualHolder.textContent = "";
      visualHolder.hidden = true;
    }

    function startRich() {
      if (typeof pell === "undefined") return false;
      richHolder.hidden = false;
      var labels = text.rich;
      var actions = ["bold", "italic", "underline", "heading1", "heading2", "paragraph", "olist", "ulist"].map(
        function (name) { return { name: name, title: labels[name] }; });
      actions.push({
        name: "link", title: labels.link,
        result: function () {
          var url = window.prompt(labels.url, "https://");
          if (url) pell.exec("createLink", url);
        }
      });
      rich = pell.init({
        element: richHolder,
        defaultParagraphSeparator: "p",
        actions: actions,
        onChange: function (html) { area.value = html; changed(); }
      });
      rich.content.innerHTML = area.value;
      rich.content.setAttribute("aria-label", area.labels && area.labels[0] ? area.labels[0].textContent : "");
      if (tokens(rich.content.innerHTML) !== tokens(area.value)) {
        stopRich();
        note.textContent = text.kept;
        return false;
      }
      document.addEventListener("selectionchange", rememberRichRange);
      return true;
    }

    function rememberRichRange() {
      var sel = window.getSelection();
      if (rich && sel.rangeCount && rich.content.contains(sel.anchorNode)) richRange = sel.getRangeAt(0).cloneRange();
    }

    function stopRich() {
      if (!rich) return;
      document.removeEventListener("selectionchange", rememberRichRange);
      rich = null;
      richRange = null;
      richHolder.textContent = "";
      richHolder.hidden = true;
    }

    function setMode(next) {
      if (next === mode) return;
      note.textContent = "";
      if (mode === "visual") { area.value = visualHtml(); stopVisual(); }
      if (mode === "rich") { area.value = rich.content.innerHTML; stopRich(); }
      mode = "html";
      if (next === "visual" && startVisual()) mode = "visual";
      if (next === "rich" && startRich()) mode = "rich";
      area.hidden = mode !== "html";
      bar.querySelectorAll("[data-mode]").forEach(function (button) {
        button.setAttribute("aria-pressed", String(button.getAttribute("data-mode") === mode));
      });
      try { window.localStorage.setItem("sendwell-editor-mode", mode); } catch (e) { /* private mode */ }
    }

    function insert(token) {
      if (mode === "html") {
        var start = area.selectionStart, end = area.selectionEnd;
        area.setRangeText(token, start, end, "end");
        area.focus();
        changed();
      } else if (mode === "rich") {
        rich.content.focus();
        if (richRange) {
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(richRange);
        }
        document.execCommand("insertText", false, token);
      } else {
        var editing = visual.getEditing();
        if (editing) {
          // The text being edited in the canvas keeps its caret: type the name there.
          visual.Canvas.getWindow().focus();
          visual.Canvas.getDocument().execCommand("insertText", false, token);
        } else {
          var target = visual.getSelected() || visual.getWrapper();
          target.append({ type: "text", content: token });
        }
      }
    }

    bar.querySelectorAll("[data-mode]").forEach(function (button) {
      button.addEventListener("click", function () { setMode(button.getAttribute("data-mode")); });
    });
    picker.addEventListener("change", function () {
      if (picker.value) insert(picker.value);
      picker.value = "";
    });
    form.addEventListener("submit", function () {
      // The last edits, even those inside the debounce.
      if (mode === "visual") area.value = visualHtml();
      if (mode === "rich") area.value = rich.content.innerHTML;
    });
    area.addEventListener("invalid", function () { setMode("html"); });

    var saved = null;
    try { saved = window.localStorage.getItem("sendwell-editor-mode"); } catch (e) { /* private mode */ }
    // HTML first (what the page shows without JavaScript too); the browser remembers the mode last chosen.
    setMode(saved === "rich" || saved === "visual" ? saved : "html");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
