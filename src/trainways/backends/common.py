"""What two or more backends do alike, written once: their backend folders import it from here.

Importing this module imports neither Keras nor a framework (the backends' ``__init__`` files may
import it before :func:`trainways.backends.select` has set the device variables); what needs
Keras imports it when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from trainways.config import ConfigError


def DenseNadam(**kwargs: Any) -> Any:
    """Keras's Nadam: on JAX and PyTorch gradients are dense already (see the TensorFlow
    backend's ``DenseNadam``, which densifies an embedding's sparse gradient)."""
    import keras

    return keras.optimizers.Nadam(**kwargs)


def trace_user_step(fn: Callable[..., Any], role: str, trace: Callable[[], Any]) -> Any:
    """What ``trace()`` — tracing the user's step ``fn`` once, the backend's way — returns; an
    error the user's code raises there becomes one line naming the step.

    Raises:
        ConfigError: ``{role} {name} failed when traced: Type: first line``.
    """
    from trainways.steps import describe_error

    try:
        return trace()
    except ConfigError:
        raise
    except Exception as error:  # a framework wraps it in pages of context: one line is the point
        raise ConfigError(
            f"{role} {fn.__name__} failed when traced: {describe_error(error)}", keys=(role,)
        ) from None


def refuse_xla_optimizer(message: str) -> Callable[..., Any]:
    """An ``XlaNadam`` for a backend without TensorFlow's XLA-compiled Nadam update: calling it
    refuses ``xla_optimizer`` with ``message``."""

    def XlaNadam(**_: Any) -> Any:
        raise ConfigError(message, keys=("xla_optimizer",))

    XlaNadam.__doc__ = f"Refused: {message}."
    return XlaNadam


def is_cluster_failure(error: BaseException) -> bool:
    """Nothing is treated as a lost worker: PyTorch runs one process, and a lost peer of a
    multi-process JAX job ends in a collective's error that trainways cannot tell apart yet."""
    return False


def batch_rows(x: Any) -> Any:
    """The examples in a batch of inputs ``x`` (any structure): its first input's rows, as
    ``fit`` weighs the loss tracker."""
    import keras

    first = next(part for part in keras.tree.flatten(x) if part is not None)
    return keras.ops.shape(first)[0]


class PassStepper:
    """What every backend's ``LoopStepper`` does alike (a part of
    :class:`trainways.trainers.base.Stepper`).

    A subclass keeps its passes in ``_passes`` (``"train"`` and ``"test"``, each with the
    ``metrics`` it updates) and the last execution's logs in ``_logs``.
    """

    _passes: Mapping[str, Any]
    _logs: Mapping[str, Any]

    def check(self, data: Any) -> None:
        """Nothing to run: a user's step was checked when it was traced, which changes nothing."""

    def reset(self) -> None:
        """Forget every pass's running metrics and the last logs."""
        for kind in self._passes.values():
            for metric in kind.metrics:
                metric.reset_state()
        self._logs = {}

    def results(self) -> dict[str, float]:
        """The last execution's logs as ``fit`` reports them: nested dicts (a step returning
        ``compile_metrics``' results whole) flattened, values as Python floats, by Keras's own
        ``pythonify_logs``."""
        from keras.src.utils.python_utils import pythonify_logs

        return pythonify_logs(dict(self._logs))
