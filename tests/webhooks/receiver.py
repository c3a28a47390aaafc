"""A webhook receiver for tests/integration/webhooks.rs that verifies every delivery with the Standard
Webhooks reference library (`standardwebhooks` from PyPI): an implementation of the scheme
independent of the operator's.

    receiver.py --key whsec_... --log FILE

Prints its port as the first line on stdout. Appends one JSON line to FILE per delivery as it
arrives (before answering): {"verified", "id", "timestamp", "signature", "contentType",
"body"}. Answers 401 to a delivery that does not verify; otherwise as last set through
`POST /control` with {"status": 204, "delay": 0.0} (the answer's status, and seconds to wait
before answering).
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

answer = {"status": 204, "delay": 0.0}
lock = threading.Lock()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    verifier = Webhook(args.key)
    log = open(args.log, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path == "/control":
                with lock:
                    answer.update(json.loads(body))
                self.reply(204)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verifier.verify(body, headers)
                verified = True
            except Exception:
                verified = False
            entry = {
                "verified": verified,
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "contentType": headers.get("content-type"),
                "body": json.loads(body) if verified else None,
            }
            with lock:
                log.write(json.dumps(entry) + "\n")
                log.flush()
                status, delay = answer["status"], answer["delay"]
            if not verified:
                self.reply(401)
                return
            if delay:
                time.sleep(delay)
            self.reply(status)

        def reply(self, status):
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
