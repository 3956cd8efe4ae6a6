"""The e2e test harness: the smtpfault server under test and the clients that talk to it.

  env       the binary, the suite's bounds, the sanitizer environment, poll(), run_binary()
  pki       the suite's test PKI (ca_file, ca_pem, pki_file)
  server    Server (start, stop, ports, transcript, captured messages), address()
  smtp      RawClient and raw SMTP helpers (transaction, dot_stuff, make_message, queued_id)
  admin     AdminClient, check_error, ctl()
  clients   one runner per real client (nodemailer, phpmailer, swaks, smtplib_client) with listener= and tls=
  profiles  fault-profile rule builders and start_with_profile()

New tests import from here (`from harness.server import Server`); conftest.py holds the fixtures and
re-exports the old names for the test files that still do `from conftest import ...`.
"""
