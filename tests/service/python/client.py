"""A client of `cvm serve` written outside Rust: the Python stubs are generated
from the repo's proto with grpcio-tools, then a hash job, a batch job and a
Groth16 job (a snarkjs key uploaded, then a witness proven) are submitted over
the Unix socket and their results checked.

usage: client.py SOCKET BATCH_JSON EXPECTED_STATE_ROOT EXPECTED_DIGESTS ZKEY WTNS EXPECTED_PUBLIC_JSON
(EXPECTED_DIGESTS: the hex BLAKE3 digests of the three hash messages, comma-separated;
EXPECTED_PUBLIC_JSON: the public.json snarkjs wrote for that key and witness)
"""

import importlib
import json
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[3]


def stubs():
    out = tempfile.mkdtemp(prefix="cvm-py-stubs-")
    proto = ROOT / "proto"
    code = protoc.main([
        "protoc",
        f"-I{proto}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(proto / "causality/accelerator/v1/accelerator.proto"),
    ])
    if code != 0:
        sys.exit(f"protoc failed: {code}")
    sys.path.insert(0, out)
    pb = importlib.import_module("causality.accelerator.v1.accelerator_pb2")
    rpc = importlib.import_module("causality.accelerator.v1.accelerator_pb2_grpc")
    return pb, rpc


def wait(stub, pb, job_id):
    for event in stub.Await(pb.AwaitRequest(job_id=job_id)):
        if event.HasField("job"):
            return event.job
    return stub.Get(pb.GetRequest(job_id=job_id))


def main():
    socket, batch_path, expected_root, expected_digests, zkey, wtns, expected_public = sys.argv[1:8]
    pb, rpc = stubs()
    # grpc-core would send the socket path as the :authority, which HTTP/2
    # servers may refuse; any host name will do on a socket.
    channel = grpc.insecure_channel(f"unix:{socket}", options=[("grpc.default_authority", "localhost")])
    stub = rpc.AcceleratorStub(channel)

    messages = [b"", b"abc", bytes(range(256)) * 10]
    payload = pb.JobPayload(hash=pb.HashJob(messages=[pb.HashMessage(data=m) for m in messages]))
    accepted = stub.Submit(pb.SubmitRequest(request_id="py-hash-1", payload=payload))
    job = wait(stub, pb, accepted.job_id)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job
    got = [bytes(d).hex() for d in job.result.hash.digests]
    assert got == expected_digests.split(","), got
    # BLAKE3("abc"), the published test vector.
    assert got[1] == "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85", got[1]

    again = stub.Submit(pb.SubmitRequest(request_id="py-hash-1", payload=payload))
    assert again.existing and again.job_id == accepted.job_id

    try:
        stub.Submit(pb.SubmitRequest(request_id="py-bad", payload=pb.JobPayload(
            merkle_root=pb.MerkleRootJob(leaves=[b"short"]))))
        raise AssertionError("a short leaf was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert "merkle_root.leaves[0]" in e.details(), e.details()

    batch = pathlib.Path(batch_path).read_bytes()
    payload = pb.JobPayload(execute_batch=pb.ExecuteBatchJob(batch_json=batch, no_prove=True))
    accepted = stub.Submit(pb.SubmitRequest(request_id="py-batch-1", payload=payload))
    job = wait(stub, pb, accepted.job_id)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job
    result = json.loads(job.result.execute_batch.result_json)
    assert result["metadata"]["committed"], result
    assert result["metadata"]["state_root_after"] == expected_root, result["metadata"]
    uploaded = stub.UploadZkey(pb.UploadZkeyRequest(zkey=pathlib.Path(zkey).read_bytes()))
    assert uploaded.zkey_id.startswith("zkey:"), uploaded
    payload = pb.JobPayload(groth16=pb.Groth16Job(zkey_id=uploaded.zkey_id, witness=pathlib.Path(wtns).read_bytes()))
    job = stub.Run(pb.SubmitRequest(request_id="py-groth16-1", payload=payload))
    assert job.state == pb.JOB_STATE_SUCCEEDED, job
    assert job.result.groth16.public_json.encode() == pathlib.Path(expected_public).read_bytes(), job.result.groth16
    proof = json.loads(job.result.groth16.proof_json)
    assert proof["protocol"] == "groth16" and proof["curve"] == "bn128", proof
    status = stub.Status(pb.StatusRequest())
    assert any(k.zkey_id == uploaded.zkey_id for k in status.key_sets), status
    print(f"ok: python client against cvm {status.version} on {status.backend}")


if __name__ == "__main__":
    main()
