// Watches one export job until it is terminal, polling the way the API asks. Copy this file as is.
//
//   const job = await watchExportJob(`${api}/datastores/${ds}/export-jobs/${id}`, { onResponse });
//
// - Sends If-None-Match with the last ETag: a 304 means "no change" and carries no body.
// - Waits Retry-After seconds before asking again, after 429 and 503 as after a running job.
// - Resolves with the job once `terminal` is true; rejects with a ProblemError for any other
//   problem answer (404, 400, 502, 504, ...), and with fetch's TypeError when the request never
//   got an answer the page may read (network down, or CORS refused the page's origin).
// - onResponse({ status, job, problem, etag, retryAfter, waitMs }) sees every answer.
// - Pass `headers` for authorization or x-api-key, and `signal` (an AbortSignal) to stop.

export class ProblemError extends Error {
  constructor(problem) {
    super(`${problem.status} ${problem.title}`);
    this.problem = problem; // { status, title, detail, requestId, type }
  }
}

/** Used when an answer has no Retry-After; never poll faster than MIN_WAIT_MS. */
const DEFAULT_WAIT_MS = 5000;
const MIN_WAIT_MS = 1000;

export async function watchExportJob(url, { headers = {}, signal, onResponse = () => {} } = {}) {
  let etag = null;
  let job = null;
  for (;;) {
    const request = new Headers(headers);
    if (etag) request.set('If-None-Match', etag);
    // no-store: the browser's cache must not answer for the API, nor hide its 304s.
    const response = await fetch(url, { headers: request, cache: 'no-store', signal });
    const retryAfter = response.headers.get('Retry-After');
    let problem = null;
    if (response.ok) {
      job = await response.json();
      etag = response.headers.get('ETag');
    } else if (response.status !== 304) {
      problem = await readProblem(response);
    }
    const waitMs = waitFor(retryAfter);
    onResponse({ status: response.status, job, problem, etag: response.headers.get('ETag'), retryAfter, waitMs });
    if (response.ok && job.terminal) return job;
    if (problem && response.status !== 429 && response.status !== 503) throw new ProblemError(problem);
    await sleep(waitMs, signal);
  }
}

/** Retry-After is delay-seconds or an HTTP date. */
function waitFor(retryAfter) {
  if (retryAfter === null) return DEFAULT_WAIT_MS;
  const seconds = /^\d+$/.test(retryAfter) ? Number(retryAfter) : (Date.parse(retryAfter) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(MIN_WAIT_MS, seconds * 1000) : DEFAULT_WAIT_MS;
}

/** An RFC 9457 problem, or one made from the status when the body is not one (a gateway's own). */
async function readProblem(response) {
  const body = (await response.json().catch(() => null)) ?? {};
  return {
    status: response.status,
    title: body.title ?? (response.statusText || `HTTP ${response.status}`),
    detail: body.detail ?? body.message ?? '',
    requestId: body.requestId ?? null,
    type: body.type ?? null,
  };
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}
