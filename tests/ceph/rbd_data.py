"""Write and checksum RBD images as a guest would see them (run with the Ceph-capable venv's Python).

    python rbd_data.py write CONF NAME...   random data into the first DATA_BYTES of each image;
                                            prints {name: sha256}
    python rbd_data.py sum CONF NAME...     prints {name: sha256 of its first DATA_BYTES} (None: no image)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import rados
import rbd

DATA_BYTES = 4 * 1024 * 1024
POOL = "volumes"


def main(command: str, conf: str, names: list[str]) -> dict[str, str | None]:
    cluster = rados.Rados(rados_id="cinder", conffile=conf)
    cluster.connect(timeout=15)
    ioctx = cluster.open_ioctx(POOL)
    out: dict[str, str | None] = {}
    try:
        for name in names:
            try:
                if command == "write":
                    data = os.urandom(DATA_BYTES)
                    with rbd.Image(ioctx, name) as image:
                        image.write(data, 0)
                        image.flush()
                else:
                    with rbd.Image(ioctx, name, read_only=True) as image:
                        data = image.read(0, DATA_BYTES)
                out[name] = hashlib.sha256(data).hexdigest()
            except rbd.ImageNotFound:
                out[name] = None
    finally:
        ioctx.close()
        cluster.shutdown()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3:])))
