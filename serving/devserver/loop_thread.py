"""An asyncio event loop on its own daemon thread, for a threaded server's aiohttp listener.

The model server (`serving.devserver.server`) and the logging proxy (`serving.logging_proxy`)
both serve REST from aiohttp next to a threaded gRPC server, so starting that loop, running a
coroutine on it from another thread, and stopping it (closing the loop, which frees its
selector) is written once, here.

    site = LoopThread("rest-api")
    site.start(start_site, timeout_s=60.0)    # runs start_site() on the loop, then keeps it running
    site.call(runner.cleanup(), timeout_s=35.0)
    site.stop(timeout_s=10.0)
"""
import asyncio
import threading
from typing import Any, Awaitable, Callable, Coroutine, List, Optional, TypeVar

Result = TypeVar("Result")


class LoopThread:
    """Runs one event loop on a daemon thread from `start()` until `stop()`.

    Args:
        name: The thread's name (seen in thread dumps and logs).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        """Whether `start()` succeeded and `stop()` has not been called since."""
        return self._loop is not None

    def start(self, setup: Callable[[], Awaitable[None]], timeout_s: float) -> None:
        """Runs `setup()` on a new loop in a new thread, then keeps the loop running.

        Args:
            setup: Makes the coroutine that binds the listener (e.g. starts an aiohttp site).
            timeout_s: Longest wait for `setup()` to finish.

        Raises:
            TimeoutError: when `setup()` has not finished within `timeout_s`.
            Exception: what `setup()` raised; the loop is then closed and its thread ended.
        """
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: List[Exception] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                try:
                    loop.run_until_complete(setup())
                except Exception as error:  # noqa: BLE001 - handed to start() to raise there.
                    failure.append(error)
                    return
                finally:
                    ready.set()
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError(f"{self.name}: the listener did not start within {timeout_s:.0f} s")
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread

    def call(self, coroutine: Coroutine[Any, Any, Result], timeout_s: float) -> Result:
        """Runs `coroutine` on the loop and returns its result.

        Raises:
            RuntimeError: when the loop is not running.
            concurrent.futures.TimeoutError: when it has not finished within `timeout_s`.
        """
        if self._loop is None:
            coroutine.close()
            raise RuntimeError(f"{self.name}: the loop is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def stop(self, timeout_s: float) -> bool:
        """Stops the loop and waits for its thread, which closes the loop.

        Returns:
            False when the thread has not ended within `timeout_s`.
        """
        if self._loop is None or self._thread is None:
            return True
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        return not thread.is_alive()
