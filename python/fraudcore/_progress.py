"""A progress bar over the named steps of a long job (tqdm, on stderr).

    with Steps(show, "FraudDetector.fit", ["features", "isolation_forest", ...]) as steps:
        steps.start("features")
        ...
        steps.start("isolation_forest")

Each start() marks the previous step done and names the running one; the
bar completes when the block ends without an error. With ``show`` False
nothing is printed and the calls cost nothing.
"""

__all__ = ["Steps"]


class Steps:
    def __init__(self, show, description, steps):
        self._bar = None
        self._running = False
        if show:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=len(steps), desc=description, unit="step")

    def start(self, step):
        if self._bar is None:
            return
        if self._running:
            self._bar.update()
        self._running = True
        self._bar.set_postfix_str(step)

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if self._bar is not None:
            if error_type is None and self._running:
                self._bar.update()
            self._bar.close()
        return False
