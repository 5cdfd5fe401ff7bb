"""Train PD-BridgeNet.

    python training/train.py --config training/configs/tiny_synthetic.yaml [key.sub=value ...]
    mtpano-train --config ...                                                         # the same, installed
    torchrun --nproc_per_node 2 training/train.py --config ... train.device=cpu     # DDP (gloo on CPU)

`training` is installed with the package, so this runs from any folder (relative paths are relative to the current
folder; a second checkout, e.g. a git worktree, that shares the venv puts its root on PYTHONPATH to import its
own `training`). Overrides are dotted keys with YAML values, e.g. `train.steps=2000 data.train.root=runs/data/train
out_dir=runs/x`. The config schema, with every key and default, is training/config.py: `out_dir`, `model`
{name, overrides, init}, `data` {train: a dataset config, see training/data}, `loss` (weights), `train` (steps,
batch_size, lr, ...). An unknown key or a wrong type stops the run naming the key and the nearest valid one; the
effective config (every default filled in) is written to out_dir/config.yaml.

Outputs in out_dir: checkpoint.pt (model, optimizer, scheduler, per-rank RNG states, step and the config as YAML;
written to a temporary file and renamed, so a kill never leaves a torn one), latest/ (weights every ckpt_every
steps, replaced by renames) and final/ (the weights at the end), tb/ (TensorBoard).
Resume: rerunning the same command continues from out_dir/checkpoint.pt (step, optimizer, scheduler, RNG and the
sample stream: the result is bit-identical to an uninterrupted run on the same hardware and thread count);
`train.resume=false` starts over. Samples: an endless stream of dataset keys, split across ranks; each key seeds
its sample's augmentation, so ranks see different samples and augmentations and a resumed run the same ones.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader, Dataset, Sampler

from mtpano_ros.model import create_model, load_model, save_checkpoint
from training.config import Config, ConfigError, ModelConfig, TrainConfig, check_config, load_config, to_dict
from training.data import build_dataset
from training.losses import compute_losses

__all__ = ["Config", "ConfigError", "StreamSampler", "build_model", "load_config", "main", "make_loader", "train"]

# buffers computed from the token grid (input size), recomputed rather than loaded when the size changes
GRID_BUFFERS = {"RayDir", "PE"}

# modules trained in the warm-up stage (MTPano: aggregators and auxiliary heads first)
WARMUP_PREFIXES = ("aggregator_inv.", "aggregator_var.", "aux_heads.", "extended_heads.")


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
    """This process's RNG states (torch CPU, the current CUDA device's when CUDA is in use, numpy, python)."""
    st = np.random.get_state()
    out = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(st[1].astype(np.int64)),
           "numpy_pos": int(st[2]), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state()
    return out


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state(s["cuda"])
    np.random.set_state(("MT19937", s["numpy_keys"].numpy().astype(np.uint32), s["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(int(x) for x in s["python"]), s["python_pos"]))


def save_state(path: Path, state: dict) -> None:
    """Atomic write: a temporary file in the same folder, flushed to disk, then os.replace."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_weights(model: torch.nn.Module, folder: Path, extra: dict, fp16: bool) -> Path:
    """save_checkpoint into `folder` without a torn state: written to folder.tmp/, then renamed into place (the
    previous folder moves to folder.old/ for the instant between the two renames, and is removed after)."""
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    for d in (tmp, old):
        if d.exists():
            shutil.rmtree(d)
    save_checkpoint(model, tmp, extra=extra, fp16=fp16)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old.exists():
        shutil.rmtree(old)
    return folder


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


def load_fitting(model: torch.nn.Module, src: dict, what: str) -> None:
    """Copy state dict `src` into `model`; the grid buffers (GRID_BUFFERS) keep the model's own values when the
    input size differs. Anything else missing or unexpected raises, naming `what`."""
    own = model.state_dict()
    state = {k: v for k, v in src.items() if not (k in GRID_BUFFERS and k in own and v.shape != own[k].shape)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - GRID_BUFFERS or unexpected:
        raise ValueError(f"{what} does not fit {model.config['variant']}: missing {missing}, unexpected {unexpected}")


def build_model(mcfg: ModelConfig, init: bool = True) -> torch.nn.Module:
    """Fresh model from the model config (name + overrides); with init and mcfg.init, learned weights are copied
    in: "imagenet" loads the backbone's ImageNet weights (model.backbone.load_imagenet()), a bundled name or
    checkpoint path its weights (any input size: the ray/position buffers that depend on the token grid are
    recomputed for the new size)."""
    model = create_model(mcfg.name, **mcfg.overrides)
    if init and mcfg.init_decoder and not mcfg.init:  # fresh backbone, decoder from a checkpoint (ablations)
        init_decoder(model, _init_state(mcfg.init_decoder), mcfg.init_decoder)
    if not (init and mcfg.init):
        return model
    if mcfg.init == "imagenet":
        load = getattr(getattr(model, "backbone", None), "load_imagenet", None)
        if load is None:
            raise ValueError(f"model.init=imagenet: the backbone of {mcfg.name} has no ImageNet weights (no "
                             "backbone.load_imagenet()); use a model whose backbone has them, a bundled name or a "
                             "checkpoint path")
        load()
        if mcfg.init_decoder:
            init_decoder(model, _init_state(mcfg.init_decoder), mcfg.init_decoder)
        return model
    load_fitting(model, _init_state(mcfg.init), f"model.init {mcfg.init}")
    return model


def init_decoder(model: torch.nn.Module, src: dict[str, torch.Tensor], label: str) -> list[str]:
    """Copy every non-backbone tensor of ``src`` whose name and shape match ``model``'s (refiners, bridge, necks,
    heads of another variant with the same widths); the token-grid buffers are left alone. Returns the copied
    names; ValueError when nothing matches (wrong checkpoint for this model)."""
    own = model.state_dict()
    take = {k: v for k, v in src.items() if not k.startswith("backbone.") and k not in GRID_BUFFERS
            and k in own and own[k].shape == v.shape}
    if not take:
        raise ValueError(f"model.init_decoder {label}: no tensor matches the model's non-backbone names and shapes")
    own.update({k: v.to(own[k].dtype) for k, v in take.items()})
    model.load_state_dict(own)
    print(f"model.init_decoder {label}: {len(take)} tensors copied, "
          f"{sum(1 for k in own if not k.startswith('backbone.')) - len(take)} non-backbone tensors kept fresh")
    return sorted(take)


def make_loader(dataset: Dataset, tc: TrainConfig, step: int, rank: int = 0, world: int = 1,
                pin_memory: bool = False) -> DataLoader:
    """DataLoader over this rank's share of the sample stream, from the position of optimisation step `step`
    (batch tc.batch_size per rank, drop_last)."""
    bs = tc.batch_size
    sampler = StreamSampler(len(dataset), tc.seed, start=step * bs * world, rank=rank, world=world)
    return DataLoader(dataset, batch_size=bs, sampler=sampler, num_workers=tc.num_workers, pin_memory=pin_memory,
                      drop_last=True, persistent_workers=tc.num_workers > 0)


def _rank_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def train(cfg: Config | dict) -> Path:
    """Run (or resume) training as configured (a Config, or a raw dict that check_config validates); returns
    the folder of the final weights (out_dir/final), or out_dir/latest when train.stop_at stopped it."""
    cfg = check_config(to_dict(cfg) if isinstance(cfg, Config) else cfg)  # idempotent; fills the dataset size
    tc = cfg.train
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if tc.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(tc.device if tc.device != "cuda" else f"cuda:{local_rank}")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    out_dir = Path(cfg.out_dir)
    cfg_dict = to_dict(cfg)
    cfg_yaml = yaml.safe_dump(cfg_dict, sort_keys=False)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(cfg_yaml)
    seed = tc.seed
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)

    ckpt = out_dir / "checkpoint.pt"
    state = None
    if tc.resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = build_model(cfg.model, init=state is None)
    torch.manual_seed(_rank_seed(seed, rank))  # per-rank stream (dropout) from here on
    model = model.to(device)
    steps, warm = tc.steps, tc.warmup_steps
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=tc.lr,
                           weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, poly_lambda(steps - warm, tc.poly_power))
    warm_params = [p for n, p in model.named_parameters() if n.startswith(WARMUP_PREFIXES)]
    warm_opt = torch.optim.Adam(warm_params, lr=tc.warmup_lr) if warm > 0 else None
    use_amp = tc.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    step = 0
    resume_rng = None
    if state is not None:
        load_fitting(model, state["model"], str(ckpt))
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if warm_opt is not None and state.get("warmup_optimizer"):
            warm_opt.load_state_dict(state["warmup_optimizer"])
        scaler.load_state_dict(state["scaler"])
        ranks = state.get("rng_ranks") or []
        resume_rng = ranks[rank] if len(ranks) == world else (state["rng"] if world == 1 else None)
        step = int(state["step"])
        if rank == 0:
            print(f"resumed {ckpt} at step {step}", flush=True)
        del state

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None, find_unused_parameters=True)

    dataset = build_dataset(cfg.data.train)
    loader = make_loader(dataset, tc, step, rank, world, pin_memory=device.type == "cuda")

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"), purge_step=step if step > 0 else None)

    def weights_extra(at_step: int) -> dict:
        return {"step": at_step, "train_config": cfg_dict}

    def checkpoint(at_step: int) -> None:
        states = [rng_state()]
        if world > 1:
            states = [None] * world
            dist.all_gather_object(states, rng_state())
        if rank != 0:
            return
        save_state(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "warmup_optimizer": warm_opt.state_dict() if warm_opt is not None else {},
                          "scaler": scaler.state_dict(), "rng": states[0], "rng_ranks": states, "step": at_step,
                          "config": cfg_yaml})
        save_weights(model, out_dir / "latest", weights_extra(at_step), tc.fp16_weights)

    from tqdm import tqdm

    bar = tqdm(total=steps, initial=step, desc="train", disable=rank != 0, dynamic_ncols=True, mininterval=5)
    ddp_model.train()
    it = iter(loader)  # draws from the torch RNG: restore the saved RNG state only after this
    if resume_rng is not None:
        set_rng_state(resume_rng)
    if world > 1:
        print(f"rank {rank}/{world}: sample stream from position {step * tc.batch_size * world + rank}, "
              f"first key {next(iter(loader.sampler))}", flush=True)
    t_last = time.perf_counter()
    while step < steps:
        if tc.stop_at is not None and step >= tc.stop_at:
            checkpoint(step)
            bar.close()
            if writer is not None:
                writer.close()
            if world > 1:
                dist.destroy_process_group()
            return out_dir / "latest"
        batch = next(it)
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        if step < tc.merged_depth_steps and "merged_depth" in batch:
            batch["depth"], batch["depth_mask"] = batch["merged_depth"], batch["merged_depth_mask"]
        in_warmup = step < warm
        if in_warmup:
            for p in model.parameters():
                p.requires_grad_(False)
            for p in warm_params:
                p.requires_grad_(True)
        elif warm > 0 and step == warm:
            for p in model.parameters():
                p.requires_grad_(True)
        optim = warm_opt if in_warmup else opt
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            outputs = ddp_model(batch["image"])
        loss, logs = compute_losses(outputs, batch, cfg.loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if tc.grad_clip:
            scaler.unscale_(optim)
            gnorm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], tc.grad_clip)
            logs["grad_norm"] = float(gnorm)
        scaler.step(optim)
        scaler.update()
        if not in_warmup:
            sched.step()
        step += 1
        bar.update(1)
        if writer is not None and (step % tc.log_every == 0 or step == steps):
            now = time.perf_counter()
            for k, v in logs.items():
                writer.add_scalar(k, v, step)
            writer.add_scalar("lr", optim.param_groups[0]["lr"], step)
            writer.add_scalar("time/step_s", (now - t_last) / tc.log_every, step)
            t_last = now
            bar.set_postfix(loss=f"{logs['loss/total']:.3f}", sem=f"{logs['loss/semantic']:.3f}",
                            dep=f"{logs['loss/depth']:.3f}", nrm=f"{logs['loss/normals']:.3f}")
            print(f"step {step} " + " ".join(f"{k.split('/')[-1]}={v:.4f}" for k, v in logs.items()), flush=True)
        if writer is not None and tc.image_every > 0 and step % tc.image_every == 0:
            writer.add_image("train/grid", image_grid({k: v.cpu() for k, v in batch.items() if torch.is_tensor(v)},
                                                      {k: v.cpu() for k, v in outputs.items() if k != "aux"}), step)
        if step % tc.ckpt_every == 0 or step == steps:
            checkpoint(step)
    bar.close()
    final = out_dir / "final"
    if rank == 0:
        save_weights(model, final, weights_extra(step), tc.fp16_weights)
        writer.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML config (keys: training/config.py)")
    ap.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=100")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        raise SystemExit(f"config error: {e}") from None
    final = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"final weights: {final}")


if __name__ == "__main__":
    main()
