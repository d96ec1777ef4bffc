"""The MONAI Label app end to end: the real server (``monailabel start_server``) on 127.0.0.1 over a studies folder
built here (simulated breast ultrasound as PNG, NIfTI and DICOM, and an unreadable file), called as a client would:
``/info/``, ``/datastore/``, ``/infer/mgcc``, ``/infer/sam`` with a box and with clicks, a saved label (and its DICOM
SEG), bad input answered with errors that name the study, one short train task, and the server stopped by its PID.

Run by ``bash .ci/label.sh`` in the label virtualenv, inside ``unshare -n`` (no network but loopback) where it can.
With trained weights (``bundles/<name>/models/model.pt``, or ``$USGEN_LABEL_MGCC_WEIGHTS`` /
``$USGEN_LABEL_SAM_WEIGHTS``) the masks must be non-empty and match the simulator's ground truth (Dice); without,
the bundles are served with seeded random weights and only the contract (sizes, formats, errors, caching, training)
is checked.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "monailabel", reason="MONAI Label is not installed here; the label tests run in .venv-label (bash .ci/label.sh)"
)

import requests
from requests_toolbelt import MultipartDecoder

from tests.label.studies import build_studies, bundle_copies, dice
from usgen_monai.label.environment import prepare_app, server_command, server_environment

#: Dice the trained bundles must reach against the simulator's masks (gated on trained weights): MGCC on average
#: over the three studies (each mask non-empty), SAM with a box
MGCC_MIN_MEAN_DICE = 0.5  # the shipped 0.2.0 weights: 0.95, 0.95, 0.93 on these three studies
SAM_BOX_MIN_DICE = 0.6
# one foreground click on this study: Dice 0.18 with the box-trained 0.2.0 SAM weights, 0.88 with the 0.3.0 weights
# (fine-tuned with simulated clicks), boxes 0.90-0.91
SAM_CLICK_MIN_DICE = 0.6
#: a loose bound on the warm per-request latency (the targets, < 0.5 s, are measured and documented, not asserted:
#: CI machines are shared)
MAX_WARM_SECONDS = 3.0
STARTUP_SECONDS = 180
TRAIN_SECONDS = 300


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A running server: its URL, process, folders and what the studies hold."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.studies = build_studies(root)
        self.bundles, self.trained = bundle_copies(root)
        self.work = root / "work"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = {
            "mgcc_bundle": str(self.bundles["mgcc"]),
            "sam_bundle": str(self.bundles["sam"]),
            "work_dir": str(self.work),
        }
        args = server_command(Path(sys.prefix), root / "studies", port=self.port, conf=conf)
        args[args.index("--app") + 1] = str(prepare_app(self.work))
        self.log_path = root / "server.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (open while the server runs; closed by stop())
        env = server_environment(threads=int(os.environ.get("USGEN_LABEL_SERVER_THREADS", "1")), venv=sys.prefix)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=root)
        self.startup_seconds = self._wait()
        self.mgcc_dice: dict[str, float] = {}

    def _wait(self) -> float:
        deadline = time.time() + STARTUP_SECONDS
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if requests.get(self.url + "/info/", timeout=5).status_code == 200:
                    return time.perf_counter() - self.started
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the server did not answer /info/ within {STARTUP_SECONDS} s:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> int:
        """Stop the server by its PID (SIGTERM, then SIGKILL after 30 s); returns its exit status."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self.log.close()
        return self.process.returncode

    def infer(self, model: str, study: str, **params):
        """POST /infer/<model>: (status, result JSON or error detail, mask rows x columns or None, seconds)."""
        start = time.perf_counter()
        r = requests.post(
            f"{self.url}/infer/{model}", params={"image": study, "output": "all"},
            data={"params": json.dumps(params)}, timeout=120,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        if r.status_code != 200:
            return r.status_code, r.json().get("detail", r.text), None, seconds
        meta, mask, name = None, None, ""
        for part in MultipartDecoder(r.content, r.headers["content-type"]).parts:
            disposition = part.headers[b"Content-Disposition"].decode()
            if 'name="params"' in disposition:
                meta = json.loads(part.content)
            else:
                name, mask = disposition, _read_mask(part.content, disposition)
        meta["_file"] = name
        return r.status_code, meta, mask, seconds

    def put_label(self, study: str, path: Path):
        with open(path, "rb") as f:
            r = requests.put(
                f"{self.url}/datastore/label", params={"image": study, "tag": "final"},
                files={"label": (path.name, f)}, data={"params": "{}"}, timeout=60,
            )  # fmt: skip
        return r.status_code, r.json()


def _read_mask(content: bytes, disposition: str) -> np.ndarray | None:
    """A returned label file as rows x columns."""
    if ".png" in disposition:
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(content)))
    if ".nii" in disposition:
        import nibabel as nib

        with tempfile.NamedTemporaryFile(suffix=".nii.gz") as f:
            f.write(content)
            f.flush()
            data = np.asarray(nib.load(f.name).dataobj)
        data = data.reshape(data.shape[:2] + tuple(s for s in data.shape[2:] if s > 1))
        return np.swapaxes(data, 0, 1)  # (X, Y[, F]) -> rows x columns[, frames]
    if ".dcm" in disposition:
        return None
    raise AssertionError(f"unexpected result file {disposition}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("label"))
    print(f"\nserver up in {s.startup_seconds:.1f} s on {s.url}; trained weights: {s.trained}")
    yield s
    code = s.stop()
    print(f"server stopped (exit {code})")


@pytest.mark.skipif(os.environ.get("USGEN_LABEL_OFFLINE") != "1", reason="not run inside unshare -n (.ci/label.sh)")
def test_network_is_loopback_only():
    interfaces = [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
    assert interfaces == ["lo"], f"expected only the loopback interface inside unshare -n, got {interfaces}"


def test_info_lists_the_tasks(server):
    info = requests.get(server.url + "/info/", timeout=30).json()
    assert set(info["models"]) == {"mgcc", "sam"}, info["models"]
    assert info["models"]["mgcc"]["dimension"] == 2 and info["models"]["sam"]["dimension"] == 2
    assert info["models"]["mgcc"]["labels"] == {"lesion": 1}
    assert info["models"]["sam"]["type"] == "deepgrow"
    assert set(info["trainers"]) == {"mgcc", "sam"}
    assert server.startup_seconds < STARTUP_SECONDS


def test_datastore_lists_png_nifti_and_dicom(server):
    objects = requests.get(server.url + "/datastore/", params={"output": "all"}, timeout=30).json()["objects"]
    assert {"us_png", "us_nifti", "us_dicom", "us_cine", "broken"} <= set(objects), sorted(objects)
    assert objects["us_dicom"]["image"]["ext"] == ".dcm" and objects["us_nifti"]["image"]["ext"] == ".nii.gz"


@pytest.mark.parametrize("study, fmt", [("us_png", "png"), ("us_nifti", "nifti"), ("us_dicom", "png")])
def test_mgcc_segments_each_kind_of_study(server, study, fmt):
    code, meta, mask, _ = server.infer("mgcc", study)
    assert code == 200, meta
    truth = server.studies[study].mask
    assert meta["format"] == fmt and mask.shape == truth.shape and mask.dtype == np.uint8, (meta, mask.shape)
    assert set(np.unique(mask)) <= {0, 1}, np.unique(mask)
    assert meta["shape"] == [truth.shape[1], truth.shape[0]]
    assert server.trained["mgcc"], "the shipped mgcc weights (bundles/mgcc/models/model.pt) are missing"
    assert mask.any(), f"{study}: empty mask"
    score = dice(mask, truth)
    server.mgcc_dice[study] = score
    print(f"mgcc {study}: Dice {score:.3f}")


def test_mgcc_segments_every_frame_of_a_colour_cine(server):
    import pydicom

    ds = pydicom.dcmread(server.root / "studies" / "us_cine.dcm", stop_before_pixels=True)
    code, meta, mask, _ = server.infer("mgcc", "us_cine")
    assert code == 200, meta
    assert meta["format"] == "nifti" and meta["shape"] == [ds.Columns, ds.Rows, int(ds.NumberOfFrames)], meta
    code, detail, _, _ = server.infer("sam", "us_cine", roi=[5, 5, 20, 20])  # a prompt is about one frame
    assert code == 422 and "us_cine.dcm" in detail and "give 'frame'" in detail, detail
    code, meta, mask, _ = server.infer("sam", "us_cine", roi=[5, 5, 20, 20], frame=2)
    assert code == 200 and meta["format"] == "png" and mask.shape == (ds.Rows, ds.Columns), meta
    code, detail, _, _ = server.infer("sam", "us_cine", roi=[5, 5, 20, 20], frame=3)
    assert code == 422 and "outside the cine's 3 frames" in detail, detail


def test_mgcc_mean_dice(server):
    assert server.trained["mgcc"], "the shipped mgcc weights (bundles/mgcc/models/model.pt) are missing"
    assert len(server.mgcc_dice) == 3, server.mgcc_dice
    mean = float(np.mean(list(server.mgcc_dice.values())))
    _record(server, "mgcc_dice", mean, list(server.mgcc_dice.values()))
    assert mean >= MGCC_MIN_MEAN_DICE, f"mean Dice {mean:.3f} < {MGCC_MIN_MEAN_DICE}: {server.mgcc_dice}"


def test_mgcc_latency(server):
    runs = [server.infer("mgcc", "us_png") for _ in range(5)]
    times = [r[3] for r in runs]
    median = float(np.median(times))
    server_side = float(np.median([r[1]["latencies"]["total"] for r in runs]))
    print(
        f"/infer/mgcc 256x256 PNG: median {median:.3f} s of {[round(t, 3) for t in times]} (server {server_side:.3f} s)"
    )
    _record(server, "infer_mgcc_256_s", median, times, server_total_median_s=server_side)
    assert median < MAX_WARM_SECONDS


def _box(mask: np.ndarray, margin: int = 8) -> list[int]:
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    return [max(int(cols.min()) - margin, 0), max(int(rows.min()) - margin, 0),
            min(int(cols.max()) + margin, w - 1), min(int(rows.max()) + margin, h - 1)]  # fmt: skip


def test_sam_box_uses_the_cached_embedding(server):
    truth = server.studies["us_nifti"].mask
    box = _box(truth)
    code, first, mask, first_seconds = server.infer("sam", "us_nifti", roi=box)
    assert code == 200, first
    assert mask.shape == truth.shape and first["format"] == "nifti"
    times, totals, hits = [], [], first["embedding_cache"]["hits"]
    for _ in range(5):
        code, meta, again, seconds = server.infer("sam", "us_nifti", roi=box)
        assert code == 200, meta
        times.append(seconds)
        totals.append(meta["latencies"]["total"])
        assert np.array_equal(again, mask)
    assert meta["embedding_cache"]["hits"] == hits + 5, meta["embedding_cache"]  # no image encoder run again
    assert meta["embedding_cache"]["misses"] == first["embedding_cache"]["misses"]
    median = float(np.median(times))
    print(
        f"/infer/sam box 256x256: first {first_seconds:.3f} s, then median {median:.3f} s of {[round(t, 3) for t in times]}"
    )
    _record(server, "infer_sam_box_256_after_first_s", median, times, first_s=round(first_seconds, 4),
            server_total_median_s=float(np.median(totals)))  # fmt: skip
    assert median < MAX_WARM_SECONDS
    assert server.trained["sam"], "the shipped sam weights (bundles/sam/models/model.pt) are missing"
    score = dice(mask, truth)
    print(f"sam box us_nifti: Dice {score:.3f}")
    assert mask.any() and score >= SAM_BOX_MIN_DICE, f"Dice {score:.3f} < {SAM_BOX_MIN_DICE}"


def test_sam_clicks(server):
    from usgen_monai.transforms.prompts import PointFromMask

    study = server.studies["us_png"]
    # the lesion pixel farthest from its border, as an annotator would click (and as SAM's evaluation clicks)
    inside = PointFromMask(reverse_indexing=False)(study.mask[None])[0][0].tolist()
    code, meta, mask, _ = server.infer("sam", "us_png", foreground=[inside], background=[[2, 2]])
    assert code == 200, meta
    assert mask.shape == study.mask.shape and set(np.unique(mask)) <= {0, 1}
    assert meta["prompts"] == {"foreground": [inside], "background": [[2, 2]]}
    code, meta3d, _, _ = server.infer("sam", "us_png", foreground=[[*inside, 0]], background=[])  # a 3D client
    assert code == 200, meta3d
    code, auto, _, _ = server.infer("sam", "us_png")  # no prompt: the box of the MGCC bundle's mask
    assert code == 200 or (code == 422 and "prompt" in auto), auto
    assert code == 200 and len(auto["prompts"]["roi"]) == 4, auto  # the shipped MGCC weights found the lesion
    assert server.trained["sam"], "the shipped sam weights (bundles/sam/models/model.pt) are missing"
    score = dice(mask, study.mask)
    print(f"sam clicks us_png: Dice {score:.3f}")
    assert mask[inside[1], inside[0]] == 1, "the clicked pixel is not in the mask"
    assert score >= SAM_CLICK_MIN_DICE, f"Dice {score:.3f} < {SAM_CLICK_MIN_DICE}"


def test_sam_box_on_a_dicom_study(server):
    truth = server.studies["us_dicom"].mask
    code, meta, mask, _ = server.infer("sam", "us_dicom", roi=_box(truth))
    assert code == 200, meta
    assert mask.shape == truth.shape
    assert server.trained["sam"], "the shipped sam weights (bundles/sam/models/model.pt) are missing"
    score = dice(mask, truth)
    print(f"sam box us_dicom: Dice {score:.3f}")
    assert score >= SAM_BOX_MIN_DICE, f"Dice {score:.3f} < {SAM_BOX_MIN_DICE}"


def test_bad_input_is_reported_and_the_server_keeps_serving(server):
    code, detail, _, _ = server.infer("mgcc", "broken")
    assert code == 422 and "broken.png" in detail and "cannot" in detail, detail
    code, detail, _, _ = server.infer("sam", "us_png", roi=[10, 10, 900, 100])
    assert code == 422 and "us_png.png" in detail and "outside the image" in detail, detail
    code, detail, _, _ = server.infer("sam", "us_png", foreground=[[300, 20]])
    assert code == 422 and "us_png.png" in detail and "foreground" in detail, detail
    code, detail, _, _ = server.infer("mgcc", "us_dicom", result_extension=".mp4")
    assert code == 422 and "result_extension" in detail, detail
    from PIL import Image

    wrong = server.root / "wrong_size.png"
    Image.fromarray(np.zeros((100, 120), np.uint8)).save(wrong)
    code, body = server.put_label("us_nifti", wrong)
    assert code == 422 and "us_nifti" in body["detail"] and "120 x 100" in body["detail"], body
    assert requests.get(server.url + "/info/", timeout=30).status_code == 200
    code, _, mask, _ = server.infer("mgcc", "us_png")
    assert code == 200 and mask is not None


def test_save_labels_png_nifti_and_dicom_seg(server):
    import nibabel as nib
    import pydicom

    truth = server.root / "truth"
    for study in ("us_png", "us_dicom"):
        code, body = server.put_label(study, truth / f"{study}_mask.png")
        assert code == 200 and body["label"] == study, body
    nifti = server.root / "us_nifti_label.nii.gz"
    nib.save(nib.Nifti1Image(server.studies["us_nifti"].mask.T.astype(np.uint8).copy(), np.eye(4)), nifti)
    code, body = server.put_label("us_nifti", nifti)
    assert code == 200, body
    labels = server.root / "studies" / "labels" / "final"
    assert {p.name for p in labels.iterdir() if p.is_file()} == {"us_png.png", "us_dicom.png", "us_nifti.nii.gz"}
    seg = pydicom.dcmread(labels / "dicom-seg" / "us_dicom_seg.dcm")
    source = pydicom.dcmread(server.studies["us_dicom"].path, stop_before_pixels=True)
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == source.StudyInstanceUID
    assert (
        seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    )
    datalist = requests.get(server.url + "/datastore/", params={"output": "all"}, timeout=30).json()["objects"]
    assert "final" in datalist["us_png"]["labels"]
    code, meta, _, _ = server.infer("mgcc", "us_dicom", result_extension=".dcm")  # a SEG as the result, too
    assert code == 200 and meta["format"] == "dicom", meta


def test_train_mgcc_on_the_saved_labels(server):
    r = requests.post(f"{server.url}/train/mgcc", json={"max_epochs": 1, "val_split": 0.0}, timeout=60)
    assert r.status_code == 200, r.text
    start, status = time.time(), {}
    while time.time() - start < TRAIN_SECONDS:
        assert requests.get(server.url + "/info/", timeout=30).status_code == 200  # serving while it trains
        status = requests.get(server.url + "/train/", timeout=30).json()
        if status.get("status") in ("DONE", "ERROR"):
            break
        time.sleep(2)
    seconds = time.time() - start
    assert status.get("status") == "DONE", json.dumps(status)[-3000:]
    weights = server.work / "models" / "mgcc.pt"
    assert weights.is_file(), sorted(p.name for p in (server.work / "models").iterdir())
    runs = sorted((server.work / "train" / "mgcc").iterdir())
    overrides = json.loads((runs[-1] / "overrides.json").read_text())
    assert overrides["training_items"] == 3 and overrides["model_path"] == str(weights)
    assert overrides["pretrained_path"] == str(server.bundles["mgcc"] / "models" / "model.pt")  # the weights in use
    print(f"/train/mgcc, 1 epoch on 3 labels: {seconds:.1f} s")
    _record(server, "train_mgcc_1_epoch_s", seconds, [seconds])
    code, meta, _, _ = server.infer("mgcc", "us_png")  # the retrained weights serve from now on
    assert code == 200 and meta["weights"] == str(weights), meta
    assert not (server.bundles["mgcc"] / "models" / "mgcc.pt").exists()


def _record(server: Server, key: str, value: float, samples, **extra) -> None:
    """Measurements for the README: ``$USGEN_LABEL_MEASUREMENTS`` (JSON), when set."""
    path = os.environ.get("USGEN_LABEL_MEASUREMENTS")
    if not path:
        return
    data = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
    data[key] = {"median_s": round(value, 4), "samples_s": [round(s, 4) for s in samples], **extra}
    data["trained_weights"] = server.trained
    data["server_startup_s"] = round(server.startup_seconds, 2)
    Path(path).write_text(json.dumps(data, indent=2))
