"""The checks of `zoo doctor` (the sanity checks of the CS231n notes, "babysitting the learning
process"): measurements in, verdicts out.

Each check turns a measurement (from `finetune.training.diagnostics`, taken by
`finetune.practice.doctor`) into pass / warn / fail and one line of advice. They are pure
functions, so tests can feed them deliberately broken numbers or models.

Thresholds, and why (healthy LeNet-5 with its Glorot/He initializations and Adam at 1e-3 measures
inside all of them with a wide margin; see tests/test_doctor.py for the broken cases):
- initial loss: with a fresh softmax head the loss should be ln C. If the logits at initialization
  have a spread sigma, the expected loss is about ln C + sigma^2 / 2, so a deviation of 0.5 ln C
  means logits spread by sqrt(ln C) (1.5 for 10 classes): the network is already confidently
  wrong before it has seen a label, a sign of too large an initialization or a broken head.
  A loss far *below* ln C before training means the labels leak into the inputs.
- overfit: 20 examples must reach 100% training accuracy; a network that cannot memorize 20
  examples has a bug (labels, loss, learning rate), not a lack of capacity.
- gradient flow: a layer whose gradient is below 1e-4 of the largest layer's learns 10,000 times
  slower (healthy networks stay within two orders of magnitude); zero or non-finite is a failure.
- activations: relative to the input's spread, a layer's outputs with std below 1% have collapsed
  (too small an initialization, CS231n's tanh demo), above 100x have exploded (too large);
  tanh/sigmoid units within 1% of their bounds for over half the outputs are saturated; ReLU
  layers with over half their units never active on the batch are mostly dead.
- initialization: a constant kernel (zero init) never breaks the symmetry between its units; a
  kernel's std 10x below Glorot's or 10x above He's shrinks or blows up the signal.
- update/weight ratio, over the first 5 steps (the ones a too-high rate wrecks a network in):
  CS231n's ~1e-3. Adam's first updates move every weight by about the learning rate, so healthy
  LeNet-5 measures 3e-3 to 7e-3 at its default; a median above 0.1 (every step changes the
  weights by a tenth) fails, outside [2e-4, 3e-2] warns. Badly initialized layers are left out:
  their ratios say more about their weights than about the learning rate.
- learning rate: warns when the range test's loss (smoothed) had risen 10% above its minimum by
  the configured rate, or, when the test saw the loss fall by 10% or more, when the rate is more
  than 10x from its suggestion.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from finetune.training import diagnostics

PASS, WARN, FAIL = "pass", "warn", "fail"
SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}

INITIAL_LOSS_TOLERANCE = 0.5  # x ln C
VANISHING_GRADIENT = 1e-4  # x the largest layer's gradient norm
COLLAPSED_ACTIVATIONS = 0.01  # x the input's std
EXPLODING_ACTIVATIONS = 100.0  # x the input's std
SATURATED = 0.5  # fraction of a tanh/sigmoid layer's outputs
DEAD = 0.5  # fraction of a ReLU layer's units
UPDATE_RATIO_BAND = (2e-4, 3e-2)
UPDATE_RATIO_FAIL = 0.1
LEARNING_RATE_FACTOR = 10.0
RANGE_TEST_CHANGE = 0.1  # a range test's loss this far above its minimum is rising, this far below its start fell
ACTIVATION_EXAMPLES = 32  # examples the activation statistics look at
OVERFIT_CHECK_EVERY = 10  # steps between the overfit test's looks at its accuracy
OVERFIT_JUMP = 2.0  # a loss this many times its start during the overfit test: too large steps
INIT_SCALE_FACTOR = 10.0  # x below Glorot's or above He's std
INIT_ADVICE = "use He initialization for ReLU layers and Glorot for tanh/sigmoid (or add BatchNormalization)"


@dataclasses.dataclass
class Check:
    """One check's verdict: what was measured, and what to do about it."""

    name: str
    status: str  # pass, warn or fail
    summary: str
    advice: str
    details: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def worst(statuses) -> str:
    return max(statuses, key=SEVERITY.__getitem__, default=PASS)


def _listing(paths, limit: int = 4) -> str:
    paths = list(paths)
    return ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def check_initial_loss(loss: float, num_classes: int) -> Check:
    expected = math.log(num_classes)
    details = {"loss": loss, "expected": expected, "num_classes": num_classes}
    summary = f"{loss:.3f} at initialization; ln({num_classes}) = {expected:.3f} expected"
    if not math.isfinite(loss):
        return Check("initial loss", FAIL, summary, "the loss is not finite before training: look for NaN/inf "
                     "in the inputs and for a head without softmax", details)
    if loss - expected > INITIAL_LOSS_TOLERANCE * expected:
        return Check("initial loss", FAIL, summary, "the network is confidently wrong before training: the "
                     "initialization (or the head's) is too large; " + INIT_ADVICE, details)
    if expected - loss > INITIAL_LOSS_TOLERANCE * expected:
        return Check("initial loss", WARN, summary, "the loss is far below chance before training: check that "
                     "the labels do not leak into the inputs and the head is newly initialized", details)
    return Check("initial loss", PASS, summary, "initialization and head give chance-level predictions, as they should",
                 details)


def initialization_scales(model) -> dict[str, dict]:
    """Each kernel's std beside the stds Glorot and He initialization would give it."""
    scales = {}
    for path, layer in diagnostics.weighted_layers(model):
        kernel = diagnostics.kernel_of(layer)
        if kernel is not None and int(np.prod(kernel.shape)) > 1:
            glorot, he = diagnostics.glorot_and_he_std(kernel.shape)
            scales[path] = {"std": float(np.std(kernel.numpy())), "glorot": glorot, "he": he}
    return scales


def off_scale_layers(scales: dict[str, dict], kind: str | None = None) -> list[str]:
    """Kernels that are constant, 10x below Glorot's std (small) or 10x above He's (large);
    with `kind` None, all three."""
    tests = {"constant": lambda s: s["std"] == 0.0,
             "small": lambda s: 0 < s["std"] < s["glorot"] / INIT_SCALE_FACTOR,
             "large": lambda s: s["std"] > INIT_SCALE_FACTOR * s["he"]}
    chosen = [tests[kind]] if kind else list(tests.values())
    return [path for path, s in scales.items() if any(test(s) for test in chosen)]


def check_initialization(scales: dict[str, dict]) -> Check:
    """Weights that are all equal (zero or constant initialization) make every unit of a layer
    compute and learn the same thing: symmetry that training never breaks. Kernels far below
    Glorot's scale or far above He's shrink or blow up the signal layer after layer."""
    details = {"kernels": scales}
    constant = off_scale_layers(scales, "constant")
    if constant:
        return Check("initialization", FAIL, f"constant weights in {_listing(constant)}",
                     "zero or constant initialization: the units of a layer stay identical; initialize randomly "
                     "(" + INIT_ADVICE + ")", details)
    small = off_scale_layers(scales, "small")
    if small:
        return Check("initialization", FAIL, f"weights under 1/10 of Glorot's scale in {_listing(small)}",
                     "the initialization is too small: " + INIT_ADVICE, details)
    large = off_scale_layers(scales, "large")
    if large:
        return Check("initialization", FAIL, f"weights over 10x He's scale in {_listing(large)}",
                     "the initialization is too large: " + INIT_ADVICE, details)
    return Check("initialization", PASS, f"{len(scales)} random kernels, within 10x of Glorot's and He's scales",
                 "the units of each layer start different, at a scale that keeps signals steady", details)


def check_gradient_flow(norms: dict[str, float]) -> Check:
    details = {"gradient_norms": norms}
    broken = [path for path, norm in norms.items() if not math.isfinite(norm)]
    if broken:
        return Check("gradient flow", FAIL, f"non-finite gradients in {_listing(broken)}",
                     "look for NaN/inf in the inputs, lower the learning rate or add --clip-norm", details)
    zero = [path for path, norm in norms.items() if norm == 0.0]
    if zero:
        return Check("gradient flow", FAIL, f"no gradient reaches {_listing(zero)}",
                     "dead ReLUs, zero initialization or a layer cut off from the loss: " + INIT_ADVICE, details)
    largest = max(norms.values(), default=0.0)
    vanishing = [path for path, norm in norms.items() if norm < VANISHING_GRADIENT * largest]
    summary = f"gradient norms from {min(norms.values(), default=0):.2g} to {largest:.2g} over {len(norms)} layers"
    if vanishing:
        return Check("gradient flow", FAIL, f"vanishing gradients in {_listing(vanishing)} ({summary})",
                     "the early layers barely learn: " + INIT_ADVICE + "; avoid sigmoid in hidden layers", details)
    return Check("gradient flow", PASS, summary, "every layer gets a gradient of a useful size", details)


def check_activations(statistics: list, input_std: float) -> Check:
    details = {"input_std": input_std, "layers": [layer.to_dict() for layer in statistics]}
    scale = input_std if input_std > 0 else 1.0
    collapsed = [s.path for s in statistics if s.std < COLLAPSED_ACTIVATIONS * scale]
    exploding = [s.path for s in statistics if s.std > EXPLODING_ACTIVATIONS * scale]
    saturated = [s.path for s in statistics if s.saturated_fraction > SATURATED]
    dead = [s.path for s in statistics if s.dead_fraction > DEAD]
    summary = f"{len(statistics)} layers, output std from {min((s.std for s in statistics), default=0):.2g} to " \
              f"{max((s.std for s in statistics), default=0):.2g} (input std {input_std:.2g})"
    if collapsed:
        return Check("activations", FAIL, f"activations collapse to a constant in {_listing(collapsed)}",
                     "the initialization is too small (signals shrink layer by layer): " + INIT_ADVICE, details)
    if exploding:
        return Check("activations", FAIL, f"activations explode in {_listing(exploding)}",
                     "the initialization is too large (signals grow layer by layer): " + INIT_ADVICE, details)
    if saturated:
        return Check("activations", FAIL, f"saturated tanh/sigmoid units in {_listing(saturated)}",
                     "the initialization is too large or the inputs are not normalized: " + INIT_ADVICE, details)
    if dead:
        return Check("activations", WARN, f"mostly dead ReLUs in {_listing(dead)}",
                     "check the initialization and the input scale, or lower the learning rate", details)
    return Check("activations", PASS, summary, "activations keep their spread through the layers", details)


def check_update_ratios(ratios: dict[str, float], off_scale: list[str] = ()) -> Check:
    """Judges the learning rate by the median ratio over the layers; layers whose weights are off
    scale (`off_scale`, from the initialization check) have ratios that say more about their
    weights than about the learning rate, so they are left out."""
    details = {"update_ratios": ratios, "left_out": list(off_scale)}
    judged = [value for path, value in ratios.items() if path not in off_scale]
    if not all(math.isfinite(value) for value in judged):
        return Check("update/weight ratio", FAIL, "the weights or their updates are not finite after a few steps",
                     "lower the learning rate (or add --clip-norm)", details)
    if not judged:
        return Check("update/weight ratio", WARN, "no layer with well-scaled weights to judge the learning rate by",
                     "fix the initialization first, then look again", details)
    median = float(np.median(judged))
    summary = f"median {median:.2g} per step over {len(judged)} layers (about 1e-3 is healthy)"
    if median > UPDATE_RATIO_FAIL:
        return Check("update/weight ratio", FAIL, summary, "each step rewrites the weights: lower the learning rate "
                     "(10x or more)", details)
    if median > UPDATE_RATIO_BAND[1]:
        return Check("update/weight ratio", WARN, summary, "updates are large: the learning rate is probably "
                     "too high", details)
    if median < UPDATE_RATIO_BAND[0]:
        return Check("update/weight ratio", WARN, summary, "updates are tiny: the learning rate is probably "
                     "too low", details)
    return Check("update/weight ratio", PASS, summary, "the learning rate moves the weights at a healthy pace", details)


def check_overfit(accuracy: float, steps: int, examples: int, losses: list[float]) -> Check:
    """`losses`: the loss before training, then after every step."""
    details = {"accuracy": accuracy, "steps": steps, "examples": examples, "losses": losses}
    diverged = bool(losses) and not math.isfinite(losses[-1])
    if diverged:
        return Check("overfit a small subset", FAIL, f"the loss became {losses[-1]} after {steps} steps on "
                     f"{examples} examples", "lower the learning rate (10x)", details)
    summary = f"{100 * accuracy:.0f}% training accuracy on {examples} examples after {steps} steps"
    if accuracy >= 1.0:
        return Check("overfit a small subset", PASS, summary, "the model, loss and labels can learn", details)
    # A loss that ever doubled from where it started was thrown about by too large steps (it may
    # settle back at chance level once the ReLUs die, below a too-large initial loss).
    jumped = len(losses) > 1 and max(losses[1:]) > OVERFIT_JUMP * losses[0]
    advice = ("the loss jumped above where it started: lower the learning rate (10x)" if jumped else
              "the loss falls too slowly to memorize a handful of examples: raise the learning rate, or check "
              "the labels, the loss and the initialization")
    return Check("overfit a small subset", WARN if accuracy >= 0.9 else FAIL, summary, advice, details)


def check_learning_rate(lr: float, range_test) -> Check:
    """Compares `lr` with a learning-rate range test (finetune.lr_find.RangeTest): too high when
    it is where the test's loss was rising again past its minimum (or past where the test stopped:
    it stops when the loss diverges); otherwise, when the test saw the loss fall clearly, more than
    10x from its suggestion warns. A test whose loss hardly fell (harder data needs more steps than
    the test took) says nothing against the rate."""
    rates, losses, suggestion = range_test.learning_rates, range_test.losses, range_test.suggestion
    details = {"lr": lr, "suggestion": suggestion}
    if not losses:
        return Check("learning rate", WARN, "the range test diverged straight away",
                     "lower the start of the range (zoo lr-find --start-lr) and check the data", details)
    lowest = int(np.argmin(losses))
    rising = next((rate for rate, loss in zip(rates[lowest:], losses[lowest:])
                   if loss > (1 + RANGE_TEST_CHANGE) * losses[lowest]), None)
    close = 1 - 1e-6  # the test's rates are products of floats: 10 may be 10.000000000000002
    if rising is None and lr > rates[-1] * close:
        rising = rates[-1]
    descent = 1 - losses[lowest] / losses[0]
    reliable = suggestion is not None and descent >= RANGE_TEST_CHANGE
    details.update(rising_from=rising, minimum_at=rates[lowest], descent=descent)
    if rising is not None and lr >= rising * close:
        # Without a clear descent, fastai's rule of thumb: a tenth of the rate at the minimum.
        better = suggestion if reliable and suggestion < rising else rates[lowest] / 10
        return Check("learning rate", WARN, f"--lr {lr:g}; the range test's loss rises again from {rising:.2g} on",
                     f"the learning rate is high: try --lr {better:.2g}", details)
    if not reliable:
        return Check("learning rate", PASS, f"--lr {lr:g}; the range test's loss fell only {100 * descent:.0f}% in "
                     f"{len(losses)} steps" + (f" and rose from {rising:.2g} on" if rising else ""),
                     "no evidence against the rate; `zoo lr-find --steps 1000` looks longer for a suggestion", details)
    summary = f"--lr {lr:g}; the range test suggests {suggestion:.2g}"
    if lr > LEARNING_RATE_FACTOR * suggestion:
        return Check("learning rate", WARN, summary, f"the learning rate is high: try --lr {suggestion:.2g}", details)
    if lr < suggestion / LEARNING_RATE_FACTOR:
        return Check("learning rate", WARN, summary, f"the learning rate is low: try --lr {suggestion:.2g}", details)
    return Check("learning rate", PASS, summary, "within 10x of the range test's suggestion", details)
