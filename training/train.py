"""Train PD-BridgeNet.

    python training/train.py --config training/configs/tiny_synthetic.yaml [key.sub=value ...]
    torchrun --nproc_per_node 2 training/train.py --config ... train.device=cpu     # DDP (gloo on CPU)

`python training/train.py` re-executes itself as `python -m training.train` with the repository root on
PYTHONPATH, so it works from any folder (relative paths are relative to the current folder). Overrides are dotted keys
with YAML values, e.g. `train.steps=2000 data.train.root=runs/data/train out_dir=runs/x`.

Config (YAML):
    out_dir: run folder (checkpoint.pt, tb/ TensorBoard logs, final/ weights)
    model: {name: mtpano-tiny, overrides: {input_hw: [H, W], ...}, init: optional bundled name / weights path}
    data: {train: <build_dataset cfg>}
    loss: weights for training.losses (see DEFAULTS there)
    train: {steps, batch_size, lr, weight_decay, poly_power, warmup_steps (stage that trains only the aggregators
            and auxiliary heads), num_workers, amp, device (auto|cpu|cuda), seed, log_every, image_every,
            ckpt_every, threads, fp16_weights, grad_clip, stop_at (checkpoint and exit at this step, as if
            the run were killed; rerun without it to resume), merged_depth_steps (pseudo-label stores: supervise
            depth with the fused "merged_depth" before this step and with the sample's one-view patch after it,
            MTPano's schedule uses 1000)}
Resume: rerunning the same command continues from out_dir/checkpoint.pt (step, optimizer, scheduler, RNG and the
data stream); `train.resume=false` starts over.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    # `python training/train.py ...` runs as `python -m training.train ...` with the repository root importable
    _root = str(Path(__file__).resolve().parents[1])
    _env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_root, os.environ.get("PYTHONPATH")) if p)}
    os.execve(sys.executable, [sys.executable, "-m", "training.train", *sys.argv[1:]], _env)

import argparse  # noqa: E402
import copy  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import yaml  # noqa: E402
from torch.utils.data import DataLoader, Sampler  # noqa: E402

from mtpano_ros.model import create_model, load_model, save_checkpoint  # noqa: E402
from training.data import build_dataset  # noqa: E402
from training.losses import compute_losses  # noqa: E402

DEFAULT_CONFIG = {
    "out_dir": "runs/train",
    "model": {"name": "mtpano-tiny", "overrides": {}, "init": None},
    "data": {"train": {"kind": "synthetic", "seed": 0, "count": 64, "size": [128, 256], "augment": True}},
    "loss": {},
    "train": {
        "steps": 1000, "batch_size": 4, "lr": 2e-4, "weight_decay": 0.0, "poly_power": 0.9, "warmup_steps": 0,
        "warmup_lr": 1e-3, "num_workers": 0, "amp": True, "device": "auto", "seed": 0, "log_every": 10,
        "image_every": 200, "ckpt_every": 100, "threads": 0, "resume": True, "fp16_weights": True,
        "grad_clip": 1.0, "stop_at": None, "merged_depth_steps": 0,
    },
}

# buffers computed from the token grid (input size), recomputed rather than loaded when the size changes
GRID_BUFFERS = {"RayDir", "PE"}

# modules trained in the warm-up stage (MTPano: aggregators and auxiliary heads first)
WARMUP_PREFIXES = ("aggregator_inv.", "aggregator_var.", "aux_heads.", "extended_heads.")


def merge(base: dict, new: dict) -> dict:
    """Recursive dict merge (new wins); returns a new dict."""
    out = copy.deepcopy(base)
    for k, v in (new or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` strings (value parsed as YAML) to a nested config."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, val = item.split("=", 1)
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(val)
    return cfg


def load_config(path: str | None, overrides: list[str]) -> dict:
    cfg = DEFAULT_CONFIG
    if path:
        with open(path) as f:
            cfg = merge(cfg, yaml.safe_load(f) or {})
    return apply_overrides(cfg, overrides)


class StreamSampler(Sampler):
    """Endless stream of dataset keys for one rank: position p of the global stream is key
    perm_epoch[p % n] + n * epoch (datasets use key % n as the index and the key as augmentation seed).
    Starts at `start` (global sample position) so a resumed run sees exactly the samples it would have seen."""

    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world

    def __iter__(self):
        pos = self.start + self.rank
        perm_epoch, perm = -1, None
        while True:
            epoch = pos // self.n
            if epoch != perm_epoch:
                perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
                perm_epoch = epoch
            yield int(perm[pos % self.n]) + self.n * epoch
            pos += self.world

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 1 << 62


def poly_lambda(total: int, power: float):
    return lambda s: max(0.0, 1.0 - s / max(total, 1)) ** power


def rng_state() -> dict:
    st = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(st[1].astype(np.int64)),
            "numpy_pos": int(st[2]), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(("MT19937", s["numpy_keys"].numpy().astype(np.uint32), s["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(int(x) for x in s["python"]), s["python_pos"]))


def save_state(path: Path, state: dict) -> None:
    """Atomic write: a temporary file in the same folder, then os.replace."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def image_grid(batch: dict, out: dict, max_depth_m: float = 10.0) -> np.ndarray:
    """(3, 2H, 4W) float image for TensorBoard: row 1 input | gt depth | gt normals | gt labels; row 2 predictions."""
    from mtpano_ros.labels import colorize_labels

    def dep(d):
        return np.repeat((1 - np.clip(d / max_depth_m, 0, 1))[..., None], 3, -1)

    img = batch["image"][0].permute(1, 2, 0).numpy()
    gd, pd = batch["depth"][0, 0].numpy(), out["depth"][0, 0].detach().float().numpy()
    gn, pn = batch["normals"][0].permute(1, 2, 0).numpy(), out["normals"][0].detach().float().permute(1, 2, 0).numpy()
    gs = colorize_labels(batch["semantic"][0].numpy().clip(0, 255).astype(np.uint8)) / 255.0
    ps = colorize_labels(out["semantic_logits"][0].detach().argmax(0).numpy().astype(np.uint8)) / 255.0
    top = np.concatenate([img, dep(gd), (gn + 1) / 2, gs], 1)
    bot = np.concatenate([img, dep(pd), (pn + 1) / 2, ps], 1)
    return np.clip(np.concatenate([top, bot], 0), 0, 1).transpose(2, 0, 1).astype(np.float32)


def _init_state(name_or_path: str) -> dict:
    """Learned weights of a bundled name or checkpoint (a folder or .safetensors is read directly, so weights whose
    config.json names another input size still load)."""
    p = Path(name_or_path)
    wfile = p / "model.safetensors" if p.is_dir() else p
    if wfile.suffix == ".safetensors" and wfile.is_file():
        from safetensors.torch import load_file

        return {k: v.float() for k, v in load_file(str(wfile)).items()}
    return load_model(name_or_path).state_dict()


def build_model(cfg: dict) -> torch.nn.Module:
    """Fresh model from cfg["model"] (name + overrides); with model.init, its learned weights are copied in (any
    input size: the ray/position buffers that depend on the token grid are recomputed for the new size)."""
    mcfg = cfg["model"]
    model = create_model(mcfg["name"], **(mcfg.get("overrides") or {}))
    if mcfg.get("init"):
        src = _init_state(mcfg["init"])
        own = model.state_dict()
        state = {k: v for k, v in src.items() if not (k in GRID_BUFFERS and v.shape != own[k].shape)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if set(missing) - GRID_BUFFERS or unexpected:
            raise ValueError(f"model.init {mcfg['init']} does not fit {mcfg['name']}: missing {missing}, "
                             f"unexpected {unexpected}")
    return model


def train(cfg: dict) -> Path:
    """Run (or resume) training as configured; returns the folder of the final weights (out_dir/final)."""
    tc = cfg["train"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if tc["device"] == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(tc["device"] if tc["device"] != "cuda" else f"cuda:{local_rank}")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if tc.get("threads"):
        torch.set_num_threads(int(tc["threads"]))
    out_dir = Path(cfg["out_dir"])
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    seed = int(tc["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)

    model = build_model(cfg).to(device)
    steps, warm = int(tc["steps"]), int(tc["warmup_steps"])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=float(tc["lr"]),
                           weight_decay=float(tc["weight_decay"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, poly_lambda(steps - warm, float(tc["poly_power"])))
    warm_params = [p for n, p in model.named_parameters() if n.startswith(WARMUP_PREFIXES)]
    warm_opt = torch.optim.Adam(warm_params, lr=float(tc["warmup_lr"])) if warm > 0 else None
    use_amp = bool(tc["amp"]) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    step = 0
    resume_rng = None
    ckpt = out_dir / "checkpoint.pt"
    if tc.get("resume", True) and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        own = model.state_dict()
        sd = {k: v for k, v in state["model"].items() if not (k in GRID_BUFFERS and v.shape != own[k].shape)}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if set(missing) - GRID_BUFFERS or unexpected:
            raise ValueError(f"{ckpt} does not fit the configured model: missing {missing}, unexpected {unexpected}")
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if warm_opt is not None and state.get("warmup_optimizer"):
            warm_opt.load_state_dict(state["warmup_optimizer"])
        scaler.load_state_dict(state["scaler"])
        resume_rng = state["rng"]
        step = int(state["step"])
        if rank == 0:
            print(f"resumed {ckpt} at step {step}", flush=True)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None, find_unused_parameters=True)

    dataset = build_dataset(cfg["data"]["train"])
    bs = int(tc["batch_size"])
    sampler = StreamSampler(len(dataset), seed, start=step * bs * world, rank=rank, world=world)
    loader = DataLoader(dataset, batch_size=bs, sampler=sampler, num_workers=int(tc["num_workers"]),
                        pin_memory=device.type == "cuda", drop_last=True,
                        persistent_workers=int(tc["num_workers"]) > 0)

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"), purge_step=step if step > 0 else None)

    def checkpoint(at_step: int) -> None:
        if rank != 0:
            return
        save_state(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "warmup_optimizer": warm_opt.state_dict() if warm_opt is not None else {},
                          "scaler": scaler.state_dict(), "rng": rng_state(), "step": at_step,
                          "config": yaml.safe_dump(cfg)})

    from tqdm import tqdm

    bar = tqdm(total=steps, initial=step, desc="train", disable=rank != 0, dynamic_ncols=True, mininterval=5)
    ddp_model.train()
    it = iter(loader)  # draws from the torch RNG: restore the saved RNG state only after this
    if resume_rng is not None:
        set_rng_state(resume_rng)
    t_last = time.perf_counter()
    stop_at = int(tc["stop_at"]) if tc.get("stop_at") else None
    while step < steps:
        if stop_at is not None and step >= stop_at:
            checkpoint(step)
            bar.close()
            if writer is not None:
                writer.close()
            if world > 1:
                dist.destroy_process_group()
            return out_dir / "latest"
        batch = next(it)
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        if step < int(tc.get("merged_depth_steps") or 0) and "merged_depth" in batch:
            batch["depth"], batch["depth_mask"] = batch["merged_depth"], batch["merged_depth_mask"]
        in_warmup = step < warm
        trainable = warm_params if in_warmup else None
        if trainable is not None:
            for p in model.parameters():
                p.requires_grad_(False)
            for p in trainable:
                p.requires_grad_(True)
        elif warm > 0 and step == warm:
            for p in model.parameters():
                p.requires_grad_(True)
        optim = warm_opt if in_warmup else opt
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            outputs = ddp_model(batch["image"])
        loss, logs = compute_losses(outputs, batch, cfg.get("loss") or {})
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if tc.get("grad_clip"):
            scaler.unscale_(optim)
            gnorm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                   float(tc["grad_clip"]))
            logs["grad_norm"] = float(gnorm)
        scaler.step(optim)
        scaler.update()
        if not in_warmup:
            sched.step()
        step += 1
        bar.update(1)
        if writer is not None and (step % int(tc["log_every"]) == 0 or step == steps):
            now = time.perf_counter()
            for k, v in logs.items():
                writer.add_scalar(k, v, step)
            writer.add_scalar("lr", optim.param_groups[0]["lr"], step)
            writer.add_scalar("time/step_s", (now - t_last) / int(tc["log_every"]), step)
            t_last = now
            bar.set_postfix(loss=f"{logs['loss/total']:.3f}", sem=f"{logs['loss/semantic']:.3f}",
                            dep=f"{logs['loss/depth']:.3f}", nrm=f"{logs['loss/normals']:.3f}")
            print(f"step {step} " + " ".join(f"{k.split('/')[-1]}={v:.4f}" for k, v in logs.items()), flush=True)
        if writer is not None and int(tc["image_every"]) > 0 and step % int(tc["image_every"]) == 0:
            writer.add_image("train/grid", image_grid({k: v.cpu() for k, v in batch.items() if torch.is_tensor(v)},
                                                      {k: v.cpu() for k, v in outputs.items() if k != "aux"}), step)
        if step % int(tc["ckpt_every"]) == 0 or step == steps:
            checkpoint(step)
            if rank == 0:
                save_checkpoint(model, out_dir / "latest", extra={"step": step, "train_config": cfg},
                                fp16=bool(tc["fp16_weights"]))
    bar.close()
    final = out_dir / "final"
    if rank == 0:
        save_checkpoint(model, final, extra={"step": step, "train_config": cfg}, fp16=bool(tc["fp16_weights"]))
        writer.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML config (see the module docstring)")
    ap.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=100")
    args = ap.parse_args(argv)
    final = train(load_config(args.config, args.overrides))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"final weights: {final}")


if __name__ == "__main__":
    main()
