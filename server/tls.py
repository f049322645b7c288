"""TLS for both listeners from one set of files: server certificate, key, optional client CA.

With ``tls_cert_file`` and ``tls_key_file`` set, HTTP is served as HTTPS (uvicorn's ssl
options) and gRPC with server credentials from the same files; with ``tls_client_ca_file``
as well, both require a client certificate signed by that CA (mutual TLS).  Both files
or neither: half a configuration is refused at start-up.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from maskserve.settings import Settings
from maskserve.settings_fields import SettingsError


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None

    @classmethod
    def from_settings(cls, settings: Settings) -> TlsFiles | None:
        cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        if cert is None and key is None:
            if ca is not None:
                raise SettingsError("tls_client_ca_file needs tls_cert_file and tls_key_file")
            return None
        if cert is None or key is None:
            raise SettingsError("TLS needs both tls_cert_file and tls_key_file")
        for path in (cert, key, ca):
            if path is not None and not path.is_file():
                raise SettingsError(f"TLS file {path.name} does not exist")
        return cls(cert, key, ca)

    def uvicorn_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            options |= {"ssl_ca_certs": str(self.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        return options

    def grpc_credentials(self) -> grpc.ServerCredentials:
        pair = (self.key.read_bytes(), self.cert.read_bytes())
        ca = self.client_ca.read_bytes() if self.client_ca is not None else None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=ca, require_client_auth=ca is not None
        )
