"""``bapps make-mini``: a small, synthetic, BAPPS-layout data set built deterministically offline.

It imitates the structure of BAPPS (Zhang et al., CVPR 2018) so every command of the toolkit can
run end to end without the 6.6 GB download. **Its judgments are not human**: they come from the
simulated observer described below. Scores on it say nothing about agreement with people.

Photos
    Only photos that scikit-image ships inside its wheel (files in ``skimage/data/``, read
    directly, no network): astronaut.png, chelsea.png, coffee.png, rocket.jpg,
    motorcycle_left.png, hubble_deep_field.jpg, ihc.png (immunohistochemistry), retina.jpg,
    camera.png, brick.png, grass.png, gravel.png, coins.png, moon.png (the grey ones become
    RGB). Train patches are cut from the top half of each photo, val and JND patches from the
    bottom half, so the splits share no pixels. A patch is a square window of 64, 96, 128 or 160
    pixels resized to 64×64 (PIL box filter); near-flat windows (std < 10/255) are redrawn.

Sets and sizes (:data:`MINI_COUNTS`)
    2AFC train traditional/cnn/mix 300 each; 2AFC val traditional 300, cnn 300, superres 280,
    deblur 280, color 260, frameinterp 250; JND val traditional 250, cnn 250.

Distortions (float RGB in [0, 1], strength ``t`` drawn per use)
    *traditional*: a composition of 1–3 distinct operations from Gaussian blur, Gaussian noise,
    JPEG, per-channel colour gain/offset, contrast, gamma, saturation, hue rotation, integer pixel
    shift, pixelation, quantisation, salt-and-pepper noise, motion blur, over-sharpening.
    *cnn*: a random "autoencoder-like" network per image: average-pool by 1, 2 or 4, a random
    3×3 conv mixing the channels (identity plus noise), a leaky nonlinearity, zero-insertion
    upsampling with a random smoothing kernel (checkerboard artefacts), a random 1×1 colour
    mix, and sometimes noise. *mix*: each image traditional or cnn with equal odds.
    Val categories share one degradation per triplet and apply two different "restorations",
    as in BAPPS: *superres* — one down-sampling (factor 2–4, box/bilinear/bicubic/nearest) then
    two up-samplers (nearest/bilinear/bicubic/lanczos, optional sharpening); *deblur* — one blur
    (Gaussian or motion) plus noise, then two restorations (under/over-sharpening with halos,
    iterative sharpening that amplifies noise, mild denoising); *color* — luminance kept, chroma
    re-estimated (desaturation, global cast, smooth blotchy chroma error); *frameinterp* — two
    neighbour frames (ref moved by ±v sub-pixel) and two interpolations (blend of the shifted
    copies, one frame alone, a warp with a flow error, a blurred blend).

Simulated observer (hidden distance, :func:`observer_distance`)
    For uint8 images ``x`` and ``y``: convert both to CIE Lab (sRGB, D65); blur each Lab channel
    with a Gaussian of σ = 1.5 px (a crude contrast-sensitivity low-pass); ``E`` = mean over
    pixels of ``sqrt(ΔL² + Δa² + Δb²)`` of the blurred images; gradient magnitudes ``g`` of the
    *unblurred* L channel (central differences); ``S`` = 1 − mean((2·g_x·g_y + 25)/(g_x² + g_y² + 25));
    ``D = 0.04·E + 1.5·S``. No metric in the toolkit computes this.
    2AFC: ``P(prefer p1) = sigmoid((D(ref,p0) − D(ref,p1)) / 0.12 + ε)``, ε ~ N(0, 1) per
    triplet (observer disagreement); ``judge = Binomial(n, P) / n`` with n = 5 raters for val and
    2 for train. JND (p0 = the clean patch, p1 = a mild distortion of it):
    ``P(same) = sigmoid((0.18 − D(p0,p1)) / 0.05)``, ``same = Binomial(3, P) / 3``.

Determinism
    Each set draws from ``numpy.random.default_rng(SeedSequence([seed, set_index]))``; PNGs are
    written by PIL with fixed parameters (no time stamps), ``.npy`` files by ``numpy.save``. The
    same seed with the same library versions gives byte-identical files, however many worker
    processes build it.
"""
from .build import GENERATOR_VERSION, MINI_COUNTS, PHOTOS, load_photos, make_mini, synthetic_note
from .observer import observer_distance

__all__ = ["GENERATOR_VERSION", "MINI_COUNTS", "PHOTOS", "load_photos", "make_mini", "observer_distance",
           "synthetic_note"]
