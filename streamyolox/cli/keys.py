"""`streamyolox keys DIR [--name N]`: a CURVE key pair for the zmq sink or a subscriber.

Writes `DIR/N.key` (public: give it to the other side) and `DIR/N.key_secret` (keep it; mode 0600).
The publisher names its `.key_secret` in `curve_server_secret_key`; the clients' `.key` files go in
the folder named by `curve_allowed_clients`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keys", help="make a CURVE key pair for the zmq sink / subscribers")
    p.add_argument("dir", type=Path, help="folder to write the key files into (created if missing)")
    p.add_argument("--name", default="streamyolox", help="base name of the files (default: streamyolox)")
    p.set_defaults(func=run_keys)


def make_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """Create `folder/name.key` and `folder/name.key_secret`; refuses to overwrite existing keys."""
    import zmq.auth

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name: {name!r} is not a plain file name")
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwriting a key (pick another --name)")
    folder.mkdir(parents=True, exist_ok=True)
    made_public, made_secret = zmq.auth.create_certificates(str(folder), name)
    os.chmod(made_secret, 0o600)
    return Path(made_public), Path(made_secret)


def run_keys(args: argparse.Namespace) -> int:
    try:
        public, secret = make_key_pair(args.dir, args.name)
    except (OSError, ValueError) as exc:
        print(f"streamyolox keys: {exc}", file=sys.stderr)
        return 1
    print(f"public key: {public}  (copy to the other side: a publisher's curve_allowed_clients folder, "
          "or a subscriber's --curve-server-key)")
    print(f"secret key: {secret}  (keep private)")
    return 0
