import numpy as np
import pytest
from PIL import Image, ImageDraw

from kitti_pipeline.pretrain.objects import DRAW, PALETTE

# A point of each kind's painted part, as a fraction of its box: a bus's side under the windows,
# a truck's cargo box, a house's wall beside the door, a boat's hull.
PAINTED = {"bus": (0.5, 0.6), "truck": (0.3, 0.5), "house": (0.3, 0.85), "boat": (0.5, 0.8)}


@pytest.mark.parametrize("name", sorted(PAINTED))
def test_a_kind_is_painted_in_its_palette(name):
    """Drawn on black at 200 x 100 from 30 seeds, the painted part is always within the jitter
    (25 per channel) of one of the kind's colours, and takes more than one of them; uniformly
    random colours would land there about 1 time in 100."""
    fx, fy = PAINTED[name]
    nearest = set()
    for seed in range(30):
        image = Image.new("RGB", (300, 200))
        DRAW[name](ImageDraw.Draw(image), np.random.default_rng(seed), 50, 50, 200, 100)
        pixel = np.array(image.getpixel((int(50 + fx * 200), int(50 + fy * 100))))
        gaps = [np.abs(pixel - colour).max() for colour in PALETTE[name]]
        assert min(gaps) <= 25, (seed, pixel.tolist())
        nearest.add(int(np.argmin(gaps)))
    assert len(nearest) > 1
