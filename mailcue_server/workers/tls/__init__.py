"""TLS for the mail listeners: a local CA, uploaded certificates, and hot swap.

:class:`TlsManager` is the whole public surface; ``chain`` (checking uploads)
and ``local`` (the local CA) are its pure helpers.
"""

from mailcue_server.workers.tls.chain import CertificateInfo
from mailcue_server.workers.tls.manager import TlsManager

__all__ = ["CertificateInfo", "TlsManager"]
