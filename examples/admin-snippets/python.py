"""Load a profile, wait for a message, reset: smtpfault's admin socket from Python (socket and json only)."""
import json, os, socket

addr = os.environ.get("SMTPFAULT_ADMIN", "127.0.0.1:2580")  # HOST:PORT or unix:PATH
if addr.startswith("unix:"):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(addr[5:])
else:
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
sock.settimeout(30)
conn = sock.makefile("rwb")


def request(req):
    conn.write(json.dumps(req).encode() + b"\n")
    conn.flush()
    return json.loads(conn.readline())


request({"cmd": "profile.load", "profile": {"name": "flaky-rcpt", "rules": [
    {"when": {"stage": "rcpt", "rcpt": "*@example.com", "times": 1}, "do": {"reply": "451 4.3.0 Try again later"}}]}})
# ... the code under test sends its mail here ...
r = request({"cmd": "messages.wait", "to": "*@example.com", "timeout": 20})
assert r["ok"], r["error"]
print("got", r["message"]["id"], "for", ",".join(r["message"]["recipients"]))
request({"cmd": "reset"})
