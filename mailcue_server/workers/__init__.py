"""Protocol servers (SMTP, IMAP, POP3) and background loops run by ``mailcue serve``."""
