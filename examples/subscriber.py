"""Receive streamyolox detections from a `zmq` sink: copy this into your own service.

    python examples/subscriber.py tcp://127.0.0.1:5556 [STREAM_ID]

Needs only pyzmq. Each message is [topic = stream id, JSON payload (+ JPEG thumbnail with thumbnail: true)];
the payload is streamyolox/schemas/detections_message.json. Use msgpack.unpackb instead of json.loads
when the sink has `format: msgpack`.
"""

import json
import sys

import zmq

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5556"
stream = sys.argv[2] if len(sys.argv) > 2 else ""  # "" = every stream
limit = int(sys.argv[3]) if len(sys.argv) > 3 else None  # stop after this many messages

sock = zmq.Context.instance().socket(zmq.SUB)
sock.connect(endpoint)
sock.setsockopt(zmq.SUBSCRIBE, stream.encode())  # a prefix filter on the topic

received = 0
while limit is None or received < limit:
    topic, payload, *thumbnail = sock.recv_multipart()
    message = json.loads(payload)
    people = [d for d in message["detections"] if d["class_name"] == "person" and d["score"] > 0.5]
    print(f"{topic.decode()} frame {message['frame']}: {len(message['detections'])} objects, "
          f"{len(people)} people", flush=True)
    received += 1
sock.close()
