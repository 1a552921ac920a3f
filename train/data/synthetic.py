"""An embedded, seeded, on-the-fly dataset: the same kind of random scenes rendered two ways.

Domain A ("photo"): dim, muted, warm colours (an evening photo), soft shading from a light at the top left, a
low-frequency texture, sensor noise, soft edges, no outlines.
Domain B ("cartoon"): a small palette of flat, saturated colours with dark outlines.

Scene i of domain A, scene i of domain B and test pair j come from independent seeds, so the
training data is unpaired; the test split renders each scene both ways, giving ground truth
for PSNR/SSIM of the translations. Nothing is stored: every image is a function of
(seed, domain, index).
"""
import numpy as np
import torch

PALETTE = np.array([
    [0.90, 0.20, 0.20], [0.95, 0.60, 0.10], [0.95, 0.90, 0.20],
    [0.20, 0.75, 0.30], [0.20, 0.40, 0.90], [0.60, 0.30, 0.80],
], dtype=np.float32)
BACKGROUNDS = np.array([
    [0.95, 0.95, 0.80], [0.55, 0.75, 0.95], [0.70, 0.90, 0.60], [0.95, 0.70, 0.75],
], dtype=np.float32)
OUTLINE = np.float32(0.08)
TINT = np.array([1.0, 0.95, 0.85], dtype=np.float32)

TRAIN_A, TRAIN_B, TEST = 0, 1, 2


def make_scene(seed, stream, index):
    """A random scene: background colour and 2-4 shapes (circle / rectangle / triangle)."""
    rng = np.random.default_rng([seed, stream, index])
    shapes = []
    for _ in range(int(rng.integers(2, 5))):
        shapes.append({
            "kind": int(rng.integers(0, 3)),
            "cx": float(rng.uniform(0.2, 0.8)), "cy": float(rng.uniform(0.2, 0.8)),
            "r": float(rng.uniform(0.12, 0.28)), "aspect": float(rng.uniform(0.6, 1.4)),
            "colour": int(rng.integers(0, len(PALETTE))),
        })
    return {"bg": int(rng.integers(0, len(BACKGROUNDS))), "shapes": shapes,
            "texture": rng.standard_normal((1, 5, 5)).astype(np.float32),
            "noise_seed": int(rng.integers(0, 2 ** 31 - 1))}


def _labels(scene, s):
    """Label map (s, s): 0 background, k = k-th shape (later shapes on top), plus the
    normalised coordinates relative to each shape's centre."""
    yy, xx = np.meshgrid((np.arange(s) + 0.5) / s, (np.arange(s) + 0.5) / s, indexing="ij")
    labels = np.zeros((s, s), dtype=np.int32)
    for k, sh in enumerate(scene["shapes"], start=1):
        dx, dy = (xx - sh["cx"]) / (sh["r"] * sh["aspect"]), (yy - sh["cy"]) / sh["r"]
        if sh["kind"] == 0:
            mask = dx * dx + dy * dy <= 1.0
        elif sh["kind"] == 1:
            mask = (np.abs(dx) <= 0.85) & (np.abs(dy) <= 0.85)
        else:  # triangle pointing up
            mask = (dy <= 0.8) & (dy >= -1.0) & (np.abs(dx) <= (dy + 1.0) / 1.8)
        labels[mask] = k
    return labels, xx, yy


def _downsample(img, f):
    c, h, w = img.shape
    return img.reshape(c, h // f, f, w // f, f).mean(axis=(2, 4))


def render_cartoon(scene, size, supersample=2):
    s = size * supersample
    labels, _, _ = _labels(scene, s)
    colours = np.concatenate([BACKGROUNDS[scene["bg"]][None], PALETTE[[sh["colour"] for sh in scene["shapes"]]]])
    img = colours[labels].transpose(2, 0, 1).copy()
    edge = np.zeros_like(labels, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    img[:, edge] = OUTLINE
    return _downsample(img, supersample).astype(np.float32)


def render_photo(scene, size, supersample=2):
    s = size * supersample
    labels, xx, yy = _labels(scene, s)
    base = 0.05 + 0.5 * np.concatenate([BACKGROUNDS[scene["bg"]][None],
                                        PALETTE[[sh["colour"] for sh in scene["shapes"]]]]) * TINT
    img = base[labels].transpose(2, 0, 1).copy()
    shade = 1.06 - 0.12 * yy  # background: light from above
    for k, sh in enumerate(scene["shapes"], start=1):
        m = labels == k
        d = (-(xx[m] - sh["cx"]) - (yy[m] - sh["cy"])) / (sh["r"] * 1.41)
        shade[m] = 1.0 + 0.3 * np.clip(d, -1.0, 1.0)
    img = img * shade[None]
    tex = torch.nn.functional.interpolate(torch.from_numpy(scene["texture"])[None], size=(s, s),
                                          mode="bilinear", align_corners=False)[0].numpy()
    img = _downsample(img + 0.02 * tex, supersample)
    noise = np.random.default_rng(scene["noise_seed"]).standard_normal(img.shape).astype(np.float32)
    return np.clip(img + 0.01 * noise, 0.0, 1.0).astype(np.float32)


def to_tensor(img):
    """[0, 1] float (C, H, W) numpy -> [-1, 1] torch."""
    return torch.from_numpy(np.ascontiguousarray(img)) * 2.0 - 1.0


class SyntheticDataset(torch.utils.data.Dataset):
    """Unpaired training data. Indexed by (index_A, index_B, augmentation_seed) tuples from
    `train.data.RunSampler`; returns the official dict {A, B, A_paths, B_paths}."""

    def __init__(self, size=64, n_train=1000, seed=0, no_flip=False):
        self.size, self.n_train, self.seed, self.no_flip = size, n_train, seed, no_flip
        self.len_A = self.len_B = n_train

    def __len__(self):
        return self.n_train

    def __getitem__(self, item):
        ia, ib, aug = item
        a = render_photo(make_scene(self.seed, TRAIN_A, ia), self.size)
        b = render_cartoon(make_scene(self.seed, TRAIN_B, ib), self.size)
        if not self.no_flip:
            rng = np.random.default_rng(aug)
            if rng.random() < 0.5:
                a = a[:, :, ::-1]
            if rng.random() < 0.5:
                b = b[:, :, ::-1]
        return {"A": to_tensor(a), "B": to_tensor(b),
                "A_paths": f"synthetic/trainA/{ia}", "B_paths": f"synthetic/trainB/{ib}"}


def paired_test_set(n, size=64, seed=0):
    """(A, B) tensors (n, 3, size, size) in [-1, 1]: test scene j rendered as photo and cartoon."""
    scenes = [make_scene(seed, TEST, j) for j in range(n)]
    a = torch.stack([to_tensor(render_photo(sc, size)) for sc in scenes])
    b = torch.stack([to_tensor(render_cartoon(sc, size)) for sc in scenes])
    return a, b
