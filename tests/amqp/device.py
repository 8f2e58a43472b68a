#!/usr/bin/env python3
"""An IoT Hub device over AMQP 1.0, on Apache Qpid Proton (python-qpid-proton), independent of
hubroute's AMQP code: it authenticates with a CBS put-token (or SASL PLAIN), attaches a sender
link to its events address and sends messages with a window of unsettled transfers.

Prints one JSON object a line: {"cbs": status, "description": ...} for the put-token answer,
{"i": n, "state": "ACCEPTED"|"REJECTED"|"RELEASED"|..., "condition": ..., "description": ...}
per message, {"link": "detached", "condition": ..., "description": ...} when the router
detaches the events link, and {"done": n, "seconds": s} at the end. Used by tests/amqp.rs.
"""

import argparse
import json
import sys
import time

from proton import Message, SSLDomain, Timeout
from proton.utils import BlockingConnection, LinkDetached


# AMQP's outcome descriptors (Proton reports a delivery's remote state as its code).
OUTCOMES = {0x24: "ACCEPTED", 0x25: "REJECTED", 0x26: "RELEASED", 0x27: "MODIFIED"}


def out(obj):
    print(json.dumps(obj), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--ca")
    p.add_argument("--mechs", default="ANONYMOUS")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--token")
    p.add_argument("--audience")
    p.add_argument("--token-type", default="azure-devices.net:sastoken")
    p.add_argument("--device", required=True)
    p.add_argument("--module")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--body", default='{"temperature": 21.5}')
    p.add_argument("--body-size", type=int, default=0)
    p.add_argument("--props", default="{}")
    p.add_argument("--message-id", default="m-{i}")
    p.add_argument("--content-type")
    p.add_argument("--content-encoding")
    p.add_argument("--user-id")
    p.add_argument("--correlation-id")
    p.add_argument("--creation-time", type=float)
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument("--stall-after", type=float, default=60,
                   help="seconds without a settlement after which to report a stall and stop")
    a = p.parse_args()

    ssl = None
    if a.url.startswith("amqps://"):
        ssl = SSLDomain(SSLDomain.MODE_CLIENT)
        ssl.set_trusted_ca_db(a.ca)
        ssl.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    kwargs = {"timeout": 30, "ssl_domain": ssl, "allowed_mechs": a.mechs}
    if a.user:
        kwargs["user"] = a.user
        kwargs["password"] = a.password
    conn = BlockingConnection(a.url, **kwargs)

    if a.token:
        # Distinct link names: Proton would name both "{uuid}-$cbs", which AMQP allows (the
        # roles differ) but hubroute's AMQP stack refuses (see grammar/deviations.md).
        requests = conn.create_sender("$cbs", name="cbs-requests")
        answers = conn.create_receiver("$cbs", name="cbs-answers")
        put = Message(
            id="put-token-1",
            reply_to="cbs",
            body=a.token,
            properties={
                "operation": "put-token",
                "type": a.token_type,
                "name": a.audience,
            },
        )
        requests.send(put)
        answer = answers.receive(timeout=30)
        answers.accept()
        out({
            "cbs": answer.properties.get("status-code"),
            "description": answer.properties.get("status-description"),
            "correlation": answer.correlation_id,
        })

    address = "/devices/%s/messages/events" % a.device
    if a.module:
        address = "/devices/%s/modules/%s/messages/events" % (a.device, a.module)
    props = json.loads(a.props)
    body = a.body.encode() if a.body_size == 0 else b"x" * a.body_size

    def message(i):
        m = Message(body=body, inferred=True, properties=dict(props))
        m.id = a.message_id.format(i=i)
        if a.content_type:
            m.content_type = a.content_type
        if a.content_encoding:
            m.content_encoding = a.content_encoding
        if a.user_id:
            m.user_id = a.user_id.encode()
        if a.correlation_id:
            m.correlation_id = a.correlation_id
        if a.creation_time is not None:
            m.creation_time = a.creation_time
        return m

    started = time.time()
    done = 0
    sent = 0
    try:
        sender = conn.create_sender(address)
        link = sender.link
        pending = {}
        while done < a.count:
            while sent < a.count and len(pending) < a.window and link.credit > 0:
                pending[sent] = link.send(message(sent))
                sent += 1
            conn.wait(
                lambda: any(d.remote_state or d.settled for d in pending.values())
                or (sent < a.count and len(pending) < a.window and link.credit > 0),
                timeout=a.stall_after,
                msg="waiting for settlements",
            )
            for i in sorted(k for k, d in pending.items() if d.remote_state or d.settled):
                d = pending.pop(i)
                cond = d.remote.condition
                if not a.quiet:
                    out({
                        "i": i,
                        "state": OUTCOMES.get(int(d.remote_state), str(d.remote_state)),
                        "condition": cond.name if cond else None,
                        "description": cond.description if cond else None,
                    })
                d.settle()
                done += 1
    except Timeout:
        out({"stalled": True, "sent": sent, "settled": done})
    except LinkDetached as e:
        cond = e.link.remote_condition
        out({
            "link": "detached",
            "condition": cond.name if cond else None,
            "description": cond.description if cond else None,
        })
    out({"done": done, "seconds": time.time() - started})
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
