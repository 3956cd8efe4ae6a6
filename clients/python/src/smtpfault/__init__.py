"""smtpfault - drive a smtpfault fake SMTP server from Python tests.

    from smtpfault import SmtpFault
    with SmtpFault.start() as sf:                      # or SmtpFault.connect("127.0.0.1:2580", token=...)
        scope = sf.create_scope("gmail-535-bad-credentials")
        ... send mail to scope.smtp.host, scope.smtp.port (verify with scope.ca) ...
        message = scope.wait_for_message(to="new-user@example.com", timeout=10)

As a pytest plugin (registered by entry point): the fixtures `smtpfault` (one server per test session) and
`smtpfault_scope` (a fresh scope per test). See docs/clients.md.
"""

from ._client import EventStream, Listener, Scope, SmtpFault
from ._connection import SmtpFaultError

__all__ = ["SmtpFault", "Scope", "Listener", "EventStream", "SmtpFaultError"]
__version__ = "0.1.0"
