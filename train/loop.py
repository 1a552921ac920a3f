"""The CycleGAN training loop: one readable function, `train(opt)`.

Per iteration (as the official CycleGAN model):
    fake_B = G(A), rec_A = F(fake_B), fake_A = F(B), rec_B = G(fake_A)
    G step:  D_A(fake_B) and D_B(fake_A) judged real (GAN loss), cycle L1 * lambda,
             identity L1 of G(B) vs B and F(A) vs A * lambda_identity * lambda
    D step:  D_A: real B vs a fake B from the pool, D_B: real A vs a fake A from the pool, each
             (real + fake) / 2.
G is netG_A (A->B, "AtoB"), F is netG_B (B->A, "BtoA"); D_A judges domain B, D_B domain A.
"""
import itertools
import json
import os
import signal
import sys
import time
import warnings

import torch
from torch import nn

from . import checkpoint as ckpt
from . import data, ddp, report, synthetic
from .image_pool import ImagePool
from .losses import GANLoss, cycle_loss, identity_loss
from .metrics import psnr, ssim, to_unit
from .schedule import make_scheduler

# Options a resumed run may change; every other option is taken from the saved run.
RESUME_OVERRIDABLE = {"resume", "max_steps", "num_threads", "torch_threads", "device", "no_progress", "print_freq",
                      "display_freq", "save_latest_freq", "eval_freq", "checkpoints_dir", "name", "demo"}
RUN_MARKERS = ("latest.pt", "opt.json", "metrics.jsonl", "samples")


class RunError(RuntimeError):
    """The run cannot start (folder already holds a run, nothing to resume, bad options)."""


def init_weights(net, gain=0.02):
    """Official CycleGAN 'normal' init: conv / linear weights N(0, gain), biases 0; affine
    norm weights N(1, gain), biases 0. AdaLIN / LIN parameters (rho, gamma, beta) keep their
    defining initial values."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def generator_config(opt):
    cfg = {"input_nc": opt.input_nc, "output_nc": opt.output_nc, "ngf": opt.ngf}
    if opt.netG in ("adalin", "ugatit", "ugatit_light") and opt.n_blocks is not None:
        cfg["n_blocks"] = opt.n_blocks
    if opt.netG in ("ugatit", "ugatit_light"):
        cfg["img_size"] = opt.crop_size
    return cfg


def build_networks(opt):
    import models
    nets = {}
    for name in ("G_A", "G_B"):
        nets[name] = models.build_generator(opt.netG, norm_impl=opt.norm_impl, **generator_config(opt))
    for name in ("D_A", "D_B"):
        nets[name] = models.NLayerDiscriminator(input_nc=opt.output_nc if name == "D_A" else opt.input_nc,
                                                ndf=opt.ndf, n_layers=opt.n_layers_D, norm_impl=opt.norm_impl)
    for net in nets.values():
        init_weights(net, opt.init_gain)
    return nets


def resolve_device(opt, dist):
    if opt.device:
        dev = torch.device(opt.device)
    else:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and dist.enabled:
        dev = torch.device("cuda", dist.local_rank)
    return dev


def prepare_run_dir(opt, run_dir):
    """Refuse to clobber a run; on --resume check there is one. Returns the checkpoint path."""
    path = os.path.join(run_dir, "latest.pt")
    if opt.resume:
        if not os.path.exists(path):
            raise RunError(f"--resume: no checkpoint at {path} (nothing to resume)")
        return path
    present = [m for m in RUN_MARKERS if os.path.exists(os.path.join(run_dir, m))]
    if present:
        raise RunError(f"{run_dir} already holds a run ({', '.join(present)}). Use --resume (or "
                       f"--continue_train) to continue it, or choose another --name, or delete the folder.")
    return path


def merge_resumed_options(opt, saved):
    """A resumed run keeps its saved options; only RESUME_OVERRIDABLE ones may be changed."""
    explicit = set(getattr(opt, "_explicit", ()))
    conflicts = []
    for k, v in saved.items():
        if k in RESUME_OVERRIDABLE and k in explicit:
            continue
        if k in explicit and getattr(opt, k, v) != v:
            conflicts.append(f"--{k} {getattr(opt, k)} (run has {v})")
        setattr(opt, k, v)
    if conflicts:
        raise RunError("a resumed run keeps its options; these differ from the saved ones: " + "; ".join(conflicts))
    return opt


def options_dict(opt):
    return {k: v for k, v in vars(opt).items() if not k.startswith("_")}


def make_dataset(opt):
    if opt.dataset == "synthetic":
        n = int(min(opt.synthetic_size, opt.max_dataset_size))
        return synthetic.SyntheticDataset(size=opt.crop_size, n_train=n, seed=opt.synthetic_seed, no_flip=opt.no_flip)
    return data.UnalignedDataset(opt.dataroot, "train", opt.max_dataset_size, opt.preprocess,
                                 opt.load_size, opt.crop_size, opt.no_flip)


def fixed_images(opt, n):
    """Fixed (A, B) images for sample grids and, on the synthetic data, the paired eval set."""
    if opt.dataset == "synthetic":
        return synthetic.paired_test_set(n, opt.crop_size, opt.synthetic_seed)
    return data.load_test_images(opt.dataroot, n, opt.preprocess, opt.load_size, opt.crop_size)


@torch.no_grad()
def translate_batches(net, x, device, batch=16, channels_last=False):
    was_training = net.training
    net.eval()
    outs = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(device)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        outs.append(net(xb).float().cpu())
    net.train(was_training)
    return torch.cat(outs)


def evaluate(G_A, G_B, test_A, test_B, device, channels_last=False):
    """PSNR / SSIM of G(A) vs true B and F(B) vs true A, and the identity baselines."""
    fake_B = translate_batches(G_A, test_A, device, channels_last=channels_last)
    fake_A = translate_batches(G_B, test_B, device, channels_last=channels_last)
    ua, ub, ufa, ufb = to_unit(test_A), to_unit(test_B), to_unit(fake_A), to_unit(fake_B)
    return {
        "psnr_AtoB": psnr(ufb, ub).mean().item(), "ssim_AtoB": ssim(ufb, ub).mean().item(),
        "psnr_BtoA": psnr(ufa, ua).mean().item(), "ssim_BtoA": ssim(ufa, ua).mean().item(),
        "psnr_identity_AtoB": psnr(ua, ub).mean().item(), "ssim_identity_AtoB": ssim(ua, ub).mean().item(),
        "psnr_identity_BtoA": psnr(ub, ua).mean().item(), "ssim_identity_BtoA": ssim(ub, ua).mean().item(),
    }


def _ignore_sigint(_worker_id):
    # Ctrl-C is handled by the main process (save, then exit); workers must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def unwrap(net):
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def train(opt, log=print):
    """Train (or resume) the run described by opt. Returns a summary dict."""
    dist = ddp.init_from_env(opt.device)
    try:
        return _train(opt, dist, log if dist.is_main else (lambda *a, **k: None))
    finally:
        dist.close()


def _train(opt, dist, log):
    run_dir = os.path.join(opt.checkpoints_dir, opt.name)
    # Decide on rank 0 (one filesystem view), share the verdict, so all ranks fail or go together.
    verdict = None
    if dist.is_main:
        try:
            ckpt_path = prepare_run_dir(opt, run_dir)
        except RunError as e:
            verdict = str(e)
    verdict = dist.broadcast_object(verdict)
    if verdict:
        raise RunError(verdict)
    ckpt_path = os.path.join(run_dir, "latest.pt")
    state = None
    if opt.resume:
        # Rank 0 reads the file (no shared filesystem needed across nodes) and sends it to all.
        if dist.is_main:
            try:
                state = ckpt.safe_load(ckpt_path, map_location="cpu")
                if not isinstance(state, dict) or state.get("format") != ckpt.FORMAT:
                    state = f"{ckpt_path} is not a training checkpoint of this project"
            except ckpt.UnsafeCheckpointError as e:
                state = str(e)
            except Exception as e:  # truncated / not a torch file
                state = f"cannot read the checkpoint {ckpt_path}: {type(e).__name__}: {e}"
        state = dist.broadcast_object(state)
        if isinstance(state, str):
            raise RunError(state)
        merge_resumed_options(opt, state["opt"])

    device = resolve_device(opt, dist)
    if opt.torch_threads > 0:
        torch.set_num_threads(opt.torch_threads)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(opt.amp)
    if amp_dtype is not None and device.type != "cuda":
        warnings.warn(f"--amp {opt.amp} needs CUDA; training in float32 on {device}")
        amp_dtype = None

    # Data first: a missing / empty folder fails here, before any network is built.
    dataset = make_dataset(opt)
    sampler = data.RunSampler(dataset.len_A, dataset.len_B, opt.batch_size, opt.seed,
                              opt.serial_batches, dist.world_size, dist.rank)
    steps_per_epoch = len(sampler)
    total_epochs = opt.n_epochs + opt.n_epochs_decay
    total_steps = total_epochs * steps_per_epoch
    if opt.max_steps is not None:
        total_steps = min(total_steps, opt.max_steps)
    is_synthetic = opt.dataset == "synthetic"
    n_fixed = max(opt.eval_size, 8) if is_synthetic else 8
    fixed_A, fixed_B = fixed_images(opt, n_fixed) if dist.is_main else (None, None)

    torch.manual_seed(opt.seed)  # same initial weights on every rank
    nets = build_networks(opt)
    for net in nets.values():
        net.to(device)
        if opt.channels_last:
            net.to(memory_format=torch.channels_last)
    G_A, G_B, D_A, D_B = nets["G_A"], nets["G_B"], nets["D_A"], nets["D_B"]
    opt_G = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=opt.lr, betas=(opt.beta1, 0.999))
    opt_D = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=opt.lr, betas=(opt.beta1, 0.999))
    sched_G = make_scheduler(opt_G, opt.n_epochs, opt.n_epochs_decay)
    sched_D = make_scheduler(opt_D, opt.n_epochs, opt.n_epochs_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    pool_A = ImagePool(opt.pool_size, seed=opt.seed * 1000 + 2 * dist.rank)  # fakes of domain A
    pool_B = ImagePool(opt.pool_size, seed=opt.seed * 1000 + 2 * dist.rank + 1)
    gan_loss = GANLoss(opt.gan_mode).to(device)
    step, epoch, batch_in_epoch = 0, 0, 0
    metrics = report.MetricsLog(os.path.join(run_dir, "metrics.jsonl"))
    samples_dir = os.path.join(run_dir, "samples")

    if state is not None:
        for key, name in (("AtoB", "G_A"), ("BtoA", "G_B")):
            nets[name].load_state_dict(state["generators"][key]["state_dict"])
        D_A.load_state_dict(state["discriminators"]["A"])
        D_B.load_state_dict(state["discriminators"]["B"])
        opt_G.load_state_dict(state["optimizers"]["G"])
        opt_D.load_state_dict(state["optimizers"]["D"])
        sched_G.load_state_dict(state["schedulers"]["G"])
        sched_D.load_state_dict(state["schedulers"]["D"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        ranks = state["rank_states"]
        if len(ranks) == dist.world_size:
            mine = ranks[dist.rank]
            pool_A.load_state_dict(mine["pool_A"], device)
            pool_B.load_state_dict(mine["pool_B"], device)
            ckpt.set_rng_state(mine["rng"])
        else:
            warnings.warn(f"checkpoint was written by {len(ranks)} processes, this run has "
                          f"{dist.world_size}: image pools and RNG states start afresh and training "
                          f"continues at the next epoch (not an exact resume)")
            if batch_in_epoch > 0:
                epoch, batch_in_epoch = epoch + 1, 0
                sched_G.step()
                sched_D.step()
        if dist.is_main:
            metrics.truncate_after(step)
            log(f"resuming {run_dir} at step {step} (epoch {epoch + 1}, batch {batch_in_epoch})")
    elif dist.is_main:
        os.makedirs(samples_dir, exist_ok=True)
        with open(os.path.join(run_dir, "opt.json"), "w") as f:
            json.dump(options_dict(opt), f, indent=2, sort_keys=True)
    if dist.is_main:
        os.makedirs(samples_dir, exist_ok=True)

    if dist.enabled:
        wrap = dict(device_ids=[device.index] if device.type == "cuda" else None)
        G_A, G_B = nn.parallel.DistributedDataParallel(G_A, **wrap), nn.parallel.DistributedDataParallel(G_B, **wrap)
        D_A, D_B = nn.parallel.DistributedDataParallel(D_A, **wrap), nn.parallel.DistributedDataParallel(D_B, **wrap)

    def save():
        """Gather every rank's pools and RNG states; rank 0 writes latest.pt atomically."""
        import models
        mine = {"pool_A": pool_A.state_dict(), "pool_B": pool_B.state_dict(), "rng": ckpt.rng_state()}
        ranks = dist.gather_to_main(mine)
        if not dist.is_main:
            return
        payload = {
            "format": ckpt.FORMAT, "version": ckpt.VERSION,
            "generators": {"AtoB": models.generator_payload(unwrap(G_A), opt.netG),
                           "BtoA": models.generator_payload(unwrap(G_B), opt.netG)},
            "discriminators": {"A": unwrap(D_A).state_dict(), "B": unwrap(D_B).state_dict()},
            "optimizers": {"G": opt_G.state_dict(), "D": opt_D.state_dict()},
            "schedulers": {"G": sched_G.state_dict(), "D": sched_D.state_dict()},
            "scaler": scaler.state_dict(),
            "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
            "world_size": dist.world_size, "rank_states": ranks, "opt": options_dict(opt),
        }
        ckpt.atomic_save(payload, ckpt_path)

    def samples():
        n = 8
        a, b = fixed_A[:n], fixed_B[:n]
        gA, gB = unwrap(G_A), unwrap(G_B)
        fb = translate_batches(gA, a, device, channels_last=opt.channels_last)
        ra = translate_batches(gB, fb, device, channels_last=opt.channels_last)
        fa = translate_batches(gB, b, device, channels_last=opt.channels_last)
        rb = translate_batches(gA, fa, device, channels_last=opt.channels_last)
        report.save_grid([a, fb, ra, b, fa, rb], os.path.join(samples_dir, f"step_{step:07d}.png"))

    def run_eval():
        ev = evaluate(unwrap(G_A), unwrap(G_B), fixed_A, fixed_B, device, opt.channels_last)
        metrics.append({"type": "eval", "step": step, "epoch": epoch + 1, **ev})
        return ev

    def refresh_report():
        report.plot_curves(metrics.path, run_dir)
        report.write_index(run_dir, options_dict(opt))

    stop = {"signal": None}

    def on_signal(signum, _frame):
        if stop["signal"] is not None:  # second Ctrl-C: give up at once
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        stop["signal"] = signum
        log(f"\n{signal.Signals(signum).name}: finishing this step, saving, then stopping "
            f"(press again to abort without saving)", file=sys.stderr)

    old_handlers = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        try:
            old_handlers[s] = signal.signal(s, on_signal)
        except ValueError:  # not the main thread
            pass

    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype is not None \
        else (lambda: torch.autocast(device.type, enabled=False))
    bar = None
    if dist.is_main and not opt.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=step, unit="it", dynamic_ncols=True, desc=opt.name)
    log(f"run {run_dir}: netG={opt.netG}, {opt.dataset} data ({len(dataset)} per epoch), "
        f"{steps_per_epoch} steps/epoch x {total_epochs} epochs, device {device}"
        + (f", {dist.world_size} processes" if dist.enabled else ""))
    gen = torch.Generator()  # the DataLoader must not consume the global RNG
    last_eval = None
    t_last = time.perf_counter()
    interrupted = False
    try:
        while epoch < total_epochs and step < total_steps and stop["signal"] is None:
            loader = data.make_loader(dataset, sampler.epoch_batches(epoch, batch_in_epoch), opt.num_threads,
                                      pin_memory=device.type == "cuda", generator=gen,
                                      worker_init_fn=_ignore_sigint)
            it = iter(loader)
            while step < total_steps:
                if dist.all_min(0 if stop["signal"] is not None else 1) == 0:
                    stop["signal"] = stop["signal"] or signal.SIGTERM
                    break
                try:
                    batch = next(it)
                except StopIteration:
                    break
                except RuntimeError:
                    if stop["signal"] is not None:  # a worker died of the same Ctrl-C
                        break
                    raise
                real_A = batch["A"].to(device, non_blocking=True)
                real_B = batch["B"].to(device, non_blocking=True)
                if opt.channels_last:
                    real_A = real_A.contiguous(memory_format=torch.channels_last)
                    real_B = real_B.contiguous(memory_format=torch.channels_last)

                # --- generators ---
                for p in itertools.chain(D_A.parameters(), D_B.parameters()):
                    p.requires_grad_(False)
                with autocast():
                    fake_B = G_A(real_A)
                    rec_A = G_B(fake_B)
                    fake_A = G_B(real_B)
                    rec_B = G_A(fake_A)
                    losses = {}
                    if opt.lambda_identity > 0:
                        losses["idt_A"] = identity_loss(G_A(real_B), real_B, opt.lambda_B, opt.lambda_identity)
                        losses["idt_B"] = identity_loss(G_B(real_A), real_A, opt.lambda_A, opt.lambda_identity)
                    else:
                        losses["idt_A"] = losses["idt_B"] = torch.zeros((), device=device)
                    # D's unwrapped here: no gradient flows to D in this step.
                    losses["G_A"] = gan_loss(unwrap(D_A)(fake_B), True)
                    losses["G_B"] = gan_loss(unwrap(D_B)(fake_A), True)
                    losses["cycle_A"] = cycle_loss(rec_A, real_A, opt.lambda_A)
                    losses["cycle_B"] = cycle_loss(rec_B, real_B, opt.lambda_B)
                    loss_G = (losses["G_A"] + losses["G_B"] + losses["cycle_A"] + losses["cycle_B"]
                              + losses["idt_A"] + losses["idt_B"])
                opt_G.zero_grad(set_to_none=True)
                scaler.scale(loss_G).backward()
                scaler.step(opt_G)

                # --- discriminators ---
                for p in itertools.chain(D_A.parameters(), D_B.parameters()):
                    p.requires_grad_(True)
                fake_B_pool = pool_B.query(fake_B.detach())
                fake_A_pool = pool_A.query(fake_A.detach())
                with autocast():
                    losses["D_A"] = (gan_loss(D_A(real_B), True) + gan_loss(D_A(fake_B_pool), False)) * 0.5
                    losses["D_B"] = (gan_loss(D_B(real_A), True) + gan_loss(D_B(fake_A_pool), False)) * 0.5
                opt_D.zero_grad(set_to_none=True)
                scaler.scale(losses["D_A"] + losses["D_B"]).backward()
                scaler.step(opt_D)
                scaler.update()

                step += 1
                batch_in_epoch += 1
                now = time.perf_counter()
                sec = now - t_last
                t_last = now
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"ep {epoch + 1}/{total_epochs} G {losses['G_A'].item():.3f}/"
                                        f"{losses['G_B'].item():.3f} D {losses['D_A'].item():.3f}/"
                                        f"{losses['D_B'].item():.3f} cyc {losses['cycle_A'].item():.3f}/"
                                        f"{losses['cycle_B'].item():.3f}", refresh=False)
                if dist.is_main:
                    if step % opt.print_freq == 0 or step == 1:
                        metrics.append({"type": "train", "step": step, "epoch": epoch + 1,
                                        **{k: v.item() for k, v in losses.items()},
                                        "lr": opt_G.param_groups[0]["lr"], "sec_per_step": sec})
                    if step % opt.display_freq == 0:
                        samples()
                    if is_synthetic and step % opt.eval_freq == 0:
                        last_eval = run_eval()
                if step % opt.save_latest_freq == 0:
                    save()
                    if dist.is_main:
                        refresh_report()
            if batch_in_epoch >= steps_per_epoch:  # epoch finished
                epoch += 1
                batch_in_epoch = 0
                with warnings.catch_warnings():  # a run resumed at an epoch end steps before any opt.step()
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                    sched_G.step()
                    sched_D.step()
        interrupted = stop["signal"] is not None
    finally:
        if bar is not None:
            bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)

    save()
    summary = {"run_dir": run_dir, "step": step, "epoch": epoch, "interrupted": interrupted,
               "checkpoint": ckpt_path}
    if dist.is_main:
        if step > 0 and not os.path.exists(os.path.join(samples_dir, f"step_{step:07d}.png")):
            samples()
        if is_synthetic and step > 0 and (last_eval is None or step % opt.eval_freq != 0):
            last_eval = run_eval()
        refresh_report()
        summary["eval"] = last_eval
        summary["samples_dir"] = samples_dir
        summary["index_html"] = os.path.join(run_dir, "index.html")
        summary["plots"] = [p for p in (os.path.join(run_dir, "losses.png"), os.path.join(run_dir, "eval.png"))
                            if os.path.exists(p)]
    return summary


def print_summary(summary, log=print):
    if summary.get("interrupted"):
        run_dir = summary["run_dir"]
        log(f"interrupted at step {summary['step']}; checkpoint saved to {summary['checkpoint']}. Continue with:\n"
            f"  python -m train --resume --name {os.path.basename(run_dir)} "
            f"--checkpoints_dir {os.path.dirname(run_dir) or '.'}")
    else:
        log(f"done: {summary['step']} steps; checkpoint {summary['checkpoint']}")
    if "index_html" in summary:
        log(f"samples:  {summary['samples_dir']}")
        log(f"plots:    {', '.join(summary['plots'])}")
        log(f"page:     {summary['index_html']}")
    ev = summary.get("eval")
    if ev:
        log("evaluation on the paired synthetic test split (higher is better):")
        log(f"  {'':24s} {'PSNR dB':>8s} {'SSIM':>6s}")
        for label, key in (("G(A) vs true B", "AtoB"), ("  identity A vs B", "identity_AtoB"),
                           ("F(B) vs true A", "BtoA"), ("  identity B vs A", "identity_BtoA")):
            log(f"  {label:24s} {ev['psnr_' + key]:8.2f} {ev['ssim_' + key]:6.3f}")
