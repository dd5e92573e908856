"""A ``requests`` transport that sends simple-salesforce's HTTPS calls to a plain-HTTP sandbox.

simple-salesforce builds every URL as ``https://{host}/...`` (login.salesforce.com,
test.salesforce.com, ``{domain}.salesforce.com``, the instance it was handed) and has no option to
change the scheme or host. :class:`SandboxAdapter`, mounted on ``https://`` of the session the SDK
is given, rewrites each request to the sandbox's base URL, keeping path and query, and tells the
sandbox the original host in ``X-Forwarded-Host``. It also gives every request a default
``(connect, read)`` timeout, because neither requests nor simple-salesforce has one and a stalled
call would otherwise hang a sync forever.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

Timeout = float | tuple[float | None, float | None]
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)


class SandboxAdapter(HTTPAdapter):
    """Rewrite ``https://any.host/path?query`` to ``{base_url}/path?query``; default a timeout."""

    def __init__(self, base_url: str, timeout: Timeout = DEFAULT_TIMEOUT, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        target = urlsplit(base_url)
        if target.scheme not in {"http", "https"} or not target.netloc:
            raise ValueError(f"sandbox base URL must look like http://host:port, got {base_url!r}")
        self.scheme = target.scheme
        self.netloc = target.netloc
        self.prefix = target.path.rstrip("/")
        self.timeout = timeout

    def rewrite(self, url: str) -> str:
        """The sandbox URL for ``url``."""
        parts = urlsplit(url)
        return urlunsplit((self.scheme, self.netloc, self.prefix + parts.path, parts.query, ""))

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Timeout | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` to the sandbox, with the default timeout unless one is given."""
        original = request.url or ""
        request.url = self.rewrite(original)
        request.headers["X-Forwarded-Host"] = urlsplit(original).netloc
        request.headers["X-Forwarded-Proto"] = "https"
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def sandbox_session(base_url: str, timeout: Timeout = DEFAULT_TIMEOUT) -> requests.Session:
    """A session for ``Salesforce(..., session=...)`` whose HTTPS calls all reach ``base_url``.

    ``trust_env`` is off so that proxy and CA-bundle variables of the environment
    (``HTTPS_PROXY``, ``REQUESTS_CA_BUNDLE``) cannot redirect or break the loopback calls.
    """
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", SandboxAdapter(base_url, timeout=timeout))
    return session
