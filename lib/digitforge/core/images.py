"""The image shape digitforge works with: MNIST-style 28x28 grayscale, one byte per pixel, row-major,
10 classes. Every other module takes these numbers from here."""

ROWS = COLS = 28
SHAPE = (ROWS, COLS)            # one image as numpy holds it
INPUT_SHAPE = (1, ROWS, COLS)   # one image as the networks take it (channels, rows, cols)
PIXELS = ROWS * COLS            # bytes of one image (the raw tables' pixels blob)
NUM_CLASSES = 10
