"""The floor for `make bench`'s extraction figures: the least a process converting one G can
do. Start Python, import numpy, read the generator's records (positional reads), convert to
float16, write the ~55 MB once (fsync). No zip, no pickle, no CRCs, no checks: not a usable
file, a measure of what the disk, Python and numpy cost."""

import os
import sys
import zipfile

import numpy as np


def main(src: str, dst: str) -> None:
    with zipfile.ZipFile(src) as z:  # the directory: where each record's data starts
        infos = [i for i in z.infolist() if "/data/" in i.filename]
    fd = os.open(src, os.O_RDONLY)
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        # the generator's records: the first ones in the file (the optimizer's follow)
        budget = 110 << 20
        for info in sorted(infos, key=lambda i: i.header_offset):
            if budget <= 0:
                break
            head = os.pread(fd, 30, info.header_offset)
            n, m = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30], "little")
            data = os.pread(fd, info.file_size, info.header_offset + 30 + n + m)
            os.write(out, np.frombuffer(data, "<f4").astype("<f2").tobytes())
            budget -= info.file_size
        os.fsync(out)
    finally:
        os.close(fd)
        os.close(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
