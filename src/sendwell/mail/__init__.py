"""Mail on the wire: MIME messages built for SMTP, and the transports that hand them to a server or the capture folder."""
