"""TLS for the mail listeners: a local CA, uploaded certificates, and hot swap.

:class:`TlsManager` is the public surface (with
:class:`SharedCertificateSync`, which keeps nodes on one upload); ``chain`` (checking uploads)
and ``local`` (the local CA) are its pure helpers.
"""

from mailcue_server.workers.tls.chain import CertificateInfo
from mailcue_server.workers.tls.manager import TlsManager
from mailcue_server.workers.tls.shared import SharedCertificateSync

__all__ = ["CertificateInfo", "SharedCertificateSync", "TlsManager"]
