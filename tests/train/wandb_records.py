"""Reading back what a W&B run wrote offline: the records of its run-<id>.wandb file.

The file is a LevelDB-style log (W&B's own header, then 32 KiB blocks of chunks, each with a
7-byte header: CRC32C (4 bytes), length (2, little-endian), type (1: whole record, 2/3/4: its
first/middle/last chunk)); every record is a wandb_internal_pb2.Record protobuf. wandb has no
public reader of it, so the tests keep this small one."""
import json
import struct

FILE_HEADER = b":W&B"
HEADER_SIZE = 7  # of the file header (":W&B", magic 0xBEE1, version) and of every chunk
BLOCK_SIZE = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path):
    """Every Record in the file, in order."""
    from wandb.proto import wandb_internal_pb2
    with open(path, "rb") as f:
        data = f.read()
    assert data[:len(FILE_HEADER)] == FILE_HEADER, f"{path} is not a W&B run file: {data[:8]!r}"
    position, pending = HEADER_SIZE, b""
    while position + HEADER_SIZE <= len(data):
        left_in_block = BLOCK_SIZE - position % BLOCK_SIZE
        if left_in_block < HEADER_SIZE:  # the writer pads a block's tail too short for a header
            position += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position:position + HEADER_SIZE])
        chunk = data[position + HEADER_SIZE:position + HEADER_SIZE + length]
        position += HEADER_SIZE + length
        if kind == 0:
            continue
        pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def history(path):
    """The rows the run logged: [{key: value}] with "_step", keys of nested values joined by "/"."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def run_config(path):
    """The config of the run (the options it logged), {key: value}."""
    config = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        updates = record.config.update if kind == "config" else record.run.config.update if kind == "run" else ()
        for item in updates:
            config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config
