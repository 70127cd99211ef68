import type { Logger } from "pino";

/**
 * Bounds a process's shutdown: unless it has exited by then, after `seconds` it logs an error and exits 1.
 * A shutdown can hang on a dependency that is gone (a Redis that is down holds every close() open); an
 * orchestrator then gets an exit it can see instead of a process it has to kill. The timer is unref'd, so it
 * never keeps a process alive that is otherwise done.
 */
export function armShutdownDeadline(seconds: number, log: Pick<Logger, "error">): NodeJS.Timeout {
  const timer = setTimeout(() => {
    log.error({ timeoutSeconds: seconds }, "shutdown timed out: forcing exit");
    process.exit(1);
  }, seconds * 1000);
  timer.unref();
  return timer;
}
