"""MailCue server: an email testing server that also runs as a real mail server."""

__version__ = "0.1.0"
