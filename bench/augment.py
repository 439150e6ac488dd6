"""How fast torchvision's transforms.v2 augments a batch compared with digitforge's batched augmentation
(training/augment.py: one affine_grid + grid_sample for the whole batch, a different transform per image).

    .venv/bin/python bench/augment.py        # a few seconds, one thread

v2's RandomAffine draws one set of parameters per call, so a batch tensor gets the same shift/rotation
for every image; per-image randomness (what training needs) means one call per image.
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # this checkout's digitforge
from digitforge.core.images import INPUT_SHAPE  # noqa: E402
from digitforge.training.augment import random_affine  # noqa: E402


def per_call_ms(fn, x, repeats: int) -> float:
    fn(x)  # warm up
    started = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return 1000 * (time.perf_counter() - started) / repeats


def main() -> None:
    from torchvision.transforms import v2

    torch.set_num_threads(1)
    torch.manual_seed(0)
    shift, rotate, scale = 2, 10, 0.1
    v2_affine = v2.RandomAffine(degrees=rotate, translate=(shift / INPUT_SHAPE[2], shift / INPUT_SHAPE[1]),
                                scale=(1 - scale, 1 + scale))
    ours = lambda x: random_affine(x, shift=shift, rotate=rotate, scale=scale)  # noqa: E731
    v2_per_image = lambda x: torch.stack([v2_affine(img) for img in x])  # noqa: E731
    print(f"{'batch':>6} {'batched (ours)':>15} {'v2 per image':>13} {'v2 one call':>12}   ms per batch")
    for n in (64, 512):
        x = torch.rand(n, *INPUT_SHAPE)
        repeats = 20 if n == 64 else 5
        print(f"{n:>6} {per_call_ms(ours, x, repeats):>15.2f} {per_call_ms(v2_per_image, x, repeats):>13.2f} "
              f"{per_call_ms(v2_affine, x, repeats):>12.2f}")


if __name__ == "__main__":
    main()
