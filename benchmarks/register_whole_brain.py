"""``register`` on a whole brain with a known misalignment: error, time and peak memory, and the silent cases.

The pair is built from the MNI152 2009 template that nilearn's wheel ships (no download): the
fixed image is its T1w template (1 mm, 197 x 233 x 189, skull-stripped); the moving image is a
T2w-like volume simulated from its grey- and white-matter maps (CSF = brain mask minus both;
:func:`data_utils.spin_echo`, TR/TE 4000/100 ms), with a smooth multiplicative bias field and
Rician noise (:func:`data_utils.rician_noise`), written on a 1.2 mm grid and misaligned by a known
rigid transform: 5 degrees about z and a shift of (4, -3, 1.5) mm. The truth is known at every
fixed voxel, so the written field is scored directly: mean 3D (and in-plane) end-point error over
the brain mask.

Every case runs the command line in a child process (``python -m pemd_tutorial register``), as a
user would; its wall time and peak resident memory (``getrusage`` of the children) are recorded.
Cases: the default (rigid pre-alignment + the MIND baseline), ``--model pretrained:mcd_pemd``,
``--prealign none`` (the old behaviour), ``--prealign affine``, a 0.5 mm fixed image (memory), and
the silent cases of issue 27 (an LPS+ header on RAS+ data, a left-right mirrored header, a
phantom, pure noise, a moving image outside the fixed field of view), each with what the
command said.

Needs nilearn and SimpleITK: ``pip install -e ".[benchmarks]"`` (benchmark only).

    python benchmarks/register_whole_brain.py            # every case, ~10 minutes on 2 busy cores
    python benchmarks/register_whole_brain.py --cases default mcd_pemd
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_utils import rician_noise, spin_echo  # noqa: E402
from data_utils.nifti import resample_to_grid  # noqa: E402
from pemd_tutorial.jsonio import write_json  # noqa: E402

ANGLE_DEG = 5.0
SHIFT_MM = np.array([4.0, -3.0, 1.5])
MOVING_MM = 1.2
CASES = ("default", "mcd_pemd", "no_prealign", "affine", "half_mm", "lps_header", "mirrored_header",
         "phantom", "noise", "outside_fov")


def rigid(points: np.ndarray) -> np.ndarray:
    """The true map from a fixed world point to the moving world point showing the same anatomy (RAS+ mm)."""
    a = np.radians(ANGLE_DEG)
    r = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return points @ r.T + SHIFT_MM


def world(affine: np.ndarray, shape) -> np.ndarray:
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).astype(np.float64)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return path


def build_pair(folder: Path) -> dict:
    """The fixed T1w, the misaligned T2w-like moving image, the brain mask and the true displacement."""
    from nilearn import datasets
    from scipy.ndimage import map_coordinates

    t1 = datasets.load_mni152_template(resolution=1)
    affine = t1.affine.astype(np.float64)
    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    mask = np.asarray(mask_img.dataobj) > 0
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float64)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float64)
    gm, wm = gm / max(gm.max(), 1e-9), wm / max(wm.max(), 1e-9)
    csf = np.clip(mask.astype(np.float64) - gm - wm, 0.0, 1.0)
    t2 = spin_echo({"gm": torch.from_numpy(gm), "wm": torch.from_numpy(wm), "csf": torch.from_numpy(csf)},
                   tr=4000.0, te=100.0).numpy()
    t2 = t2 / t2.max()
    fixed = save(folder / "fixed_T1w.nii.gz", np.asarray(t1.dataobj, dtype=np.float64), affine)

    # the moving grid: 1.2 mm, covering the fixed field of view
    extent = np.array(t1.shape) * 1.0
    m_shape = tuple(int(np.ceil(e / MOVING_MM)) for e in extent)
    m_affine = np.diag([MOVING_MM, MOVING_MM, MOVING_MM, 1.0])
    m_affine[:3, 3] = affine[:3, 3]
    y = world(m_affine, m_shape)  # moving world points; the anatomy there is at the fixed point R^-1 (y - t)
    a = np.radians(ANGLE_DEG)
    r = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    p = (y - SHIFT_MM) @ r  # = R^T (y - t) row-wise
    vox = (p - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    moving = map_coordinates(t2, [vox[..., 0], vox[..., 1], vox[..., 2]], order=1, mode="constant", cval=0.0)
    gen = torch.Generator().manual_seed(0)
    xs = [np.linspace(-1, 1, n) for n in m_shape]
    gx, gy, gz = np.meshgrid(*xs, indexing="ij")
    bias = np.exp(0.25 * gx - 0.15 * gy + 0.1 * gz * gx)
    moving = moving * bias
    noisy = rician_noise(torch.from_numpy(moving.reshape(1, 1, m_shape[0], -1)), std=0.02, generator=gen)
    moving = noisy.numpy().reshape(m_shape)
    moving_path = save(folder / "moving_T2w.nii.gz", moving * 1000.0, m_affine)
    truth = rigid(world(affine, t1.shape)) - world(affine, t1.shape)
    return {"fixed": fixed, "moving": moving_path, "mask": mask, "truth": truth, "affine": affine,
            "t2": t2, "m_affine": m_affine, "m_shape": m_shape, "moving_data": moving * 1000.0}


#: Runs the command and prints, on its last stderr lines, the child's own peak resident memory (VmHWM of
#: /proc/self/status, which starts afresh at exec; getrusage's ru_maxrss would carry the parent's
#: peak over) and its CPU time.
LAUNCHER = (
    "import os, runpy, sys\n"
    "sys.argv = ['python -m pemd_tutorial', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('pemd_tutorial', run_name='__main__')\n"
    "finally:\n"
    "    hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')]\n"
    "    print('PEAK_RSS_KB', hwm[0], file=sys.stderr)\n"
    "    t = os.times()\n"
    "    print('CPU_S', t.user + t.system, file=sys.stderr)\n"
)
def run_register(args: list[str]) -> dict:
    """The command in a child process: exit status, wall time, peak memory, what it printed."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, "register", *args], capture_output=True,
                          text=True, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    err = proc.stderr.strip().splitlines()
    peak = [int(line.split()[1]) for line in err if line.startswith("PEAK_RSS_KB")]
    cpu = [float(line.split()[1]) for line in err if line.startswith("CPU_S")]
    err = [line for line in err if not line.startswith(("PEAK_RSS_KB", "CPU_S"))]
    return {"exit_status": proc.returncode, "wall_s": round(wall, 1),
            "cpu_s": round(cpu[-1], 1) if cpu else None,
            "peak_rss_gb": round(peak[-1] / 1024**2, 3) if peak else None,
            "stdout": proc.stdout.strip().splitlines(), "stderr": err[-8:]}


def score(out: Path, pair: dict) -> dict:
    field = np.asarray(nib.load(out / "field.nii.gz").dataobj)[:, :, :, 0, :] * np.array([-1.0, -1.0, 1.0])
    diff = field - pair["truth"]
    m = pair["mask"]
    return {"error_3d_mm": round(float(np.linalg.norm(diff, axis=-1)[m].mean()), 3),
            "error_in_plane_mm": round(float(np.linalg.norm(diff[..., :2], axis=-1)[m].mean()), 3),
            "kept": json.loads((out / "metrics.json").read_text())["kept"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "register_whole_brain.json"))
    parser.add_argument("--merge", action="store_true",
                        help="update these cases in an existing --out file, keep the others")
    args = parser.parse_args()
    results: dict = {
        "what": "python -m pemd_tutorial register on nilearn's MNI152 2009 T1w (1 mm) and a simulated T2w "
                f"on a {MOVING_MM} mm grid misaligned by {ANGLE_DEG} degrees about z and "
                f"{SHIFT_MM.tolist()} mm",
        "command": "python benchmarks/register_whole_brain.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, load "
                   f"average {os.getloadavg()[0]:.1f} at the start (1 minute)",
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pair = build_pair(tmp)
        identity = np.linalg.norm(pair["truth"], axis=-1)[pair["mask"]].mean()
        results["no_registration_error_3d_mm"] = round(float(identity), 3)
        results["no_registration_error_in_plane_mm"] = round(
            float(np.linalg.norm(pair["truth"][..., :2], axis=-1)[pair["mask"]].mean()), 3)
        base = ["--fixed", str(pair["fixed"]), "--moving", str(pair["moving"])]
        scored = {"default": [], "mcd_pemd": ["--model", "pretrained:mcd_pemd"],
                  "no_prealign": ["--prealign", "none"], "affine": ["--prealign", "affine"]}
        for case in args.cases:
            out = tmp / case
            if case in scored:
                run = run_register([*base, *scored[case], "--out", str(out)])
                if run["exit_status"] == 0:
                    run.update(score(out, pair))
            elif case == "half_mm":
                fimg = nib.load(pair["fixed"])
                half = fimg.affine @ np.diag([0.5, 0.5, 0.5, 1.0])
                half_shape = tuple(2 * n for n in fimg.shape)
                data = resample_to_grid(np.asarray(fimg.dataobj, dtype=np.float64), fimg,
                                        nib.Nifti1Image(np.zeros(half_shape, np.int8), half))
                fixed_half = save(tmp / "fixed_half.nii.gz", data, half)
                del data
                run = run_register(["--fixed", str(fixed_half), "--moving", str(pair["moving"]),
                                    "--out", str(out)])
                run["fixed_shape"] = list(half_shape)
            else:
                run = run_register(silent_case(case, pair, tmp) + ["--out", str(out)])
            # warnings, errors and the last line of a traceback
            run["warnings"] = [line for line in run.pop("stderr")
                               if "warning" in line.lower() or "error" in line.lower()]
            results["cases"][case] = run
            print(case, {k: v for k, v in run.items() if k != "stdout"}, flush=True)
            write(results, args)  # after every case: a stopped run keeps what it measured
    print(f"wrote {args.out}")


def write(results: dict, args) -> None:
    """``results`` to ``--out`` (with ``--merge``, its cases updated in the existing file)."""
    out = Path(args.out)
    if args.merge and out.is_file():
        earlier = json.loads(out.read_text())
        earlier["cases"].update(results["cases"])
        merged = [m for m in earlier.get("merged", []) if m["command"] != results["command"]]
        earlier["merged"] = [*merged, {"cases": list(results["cases"]), "date": results["date"],
                                       "command": results["command"]}]
        results = earlier
    write_json(out, results)


def silent_case(case: str, pair: dict, tmp: Path) -> list[str]:
    """Arguments of one of the cases that registered silently before issue 27."""
    fixed = str(pair["fixed"])
    rng = np.random.default_rng(1)
    if case == "lps_header":  # RAS+ data labelled LPS+: the first two axes' signs flipped in the header
        a = pair["m_affine"] @ np.diag([-1.0, -1.0, 1.0, 1.0])
        return ["--fixed", fixed, "--moving", str(save(tmp / "lps.nii.gz", pair["moving_data"], a))]
    if case == "mirrored_header":  # the header's left-right axis reversed, the data unchanged
        a = np.diag([-1.0, 1.0, 1.0, 1.0]) @ pair["m_affine"]
        return ["--fixed", fixed, "--moving", str(save(tmp / "mirror.nii.gz", pair["moving_data"], a))]
    if case == "outside_fov":  # the moving header's origin 300 mm away
        a = pair["m_affine"].copy()
        a[:3, 3] += [300.0, 0.0, 0.0]
        return ["--fixed", fixed, "--moving", str(save(tmp / "far.nii.gz", pair["moving_data"], a))]
    shape = nib.load(fixed).shape
    affine = pair["affine"]
    if case == "noise":
        f = save(tmp / "noise_f.nii.gz", rng.random(shape), affine)
        m = save(tmp / "noise_m.nii.gz", rng.random(shape), affine)
        return ["--fixed", str(f), "--moving", str(m)]
    # phantom: nested ellipsoids (a Shepp-Logan-like head phantom) with two contrasts, shifted by 3 mm
    p = world(affine, shape)
    c = p.mean(axis=(0, 1, 2))

    def phantom(shift, values):
        q = p - c - shift
        vol = np.zeros(shape)
        for (ax, ay, az, ox, oy), v in zip([(70, 90, 70, 0, 0), (66, 86, 66, 0, 0), (15, 25, 20, -20, 5),
                                            (15, 25, 20, 20, 5), (8, 8, 8, 0, -40)], values, strict=True):
            inside = ((q[..., 0] - ox) / ax) ** 2 + ((q[..., 1] - oy) / ay) ** 2 + (q[..., 2] / az) ** 2 < 1
            vol[inside] = v
        return vol

    f = save(tmp / "phantom_f.nii.gz", phantom(np.zeros(3), [1.0, 0.2, 0.5, 0.5, 0.8]), affine)
    m = save(tmp / "phantom_m.nii.gz", phantom(np.array([3.0, 0.0, 0.0]), [0.3, 0.9, 0.6, 0.6, 0.1]), affine)
    return ["--fixed", str(f), "--moving", str(m)]


if __name__ == "__main__":
    main()
