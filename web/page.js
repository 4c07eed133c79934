// The page around poll.js: reads the job to watch from the query (?api=&datastore=&job=), watches
// it, and shows every answer. What it saw is also kept in data-* attributes on <main>, for tests.
import { watchExportJob, ProblemError } from './poll.js';

const $ = (id) => document.getElementById(id);
const root = $('watch');
const form = $('target');
const params = new URLSearchParams(location.search);
for (const name of ['api', 'datastore', 'job']) {
  if (params.get(name)) form.elements[name].value = params.get(name);
}
if (params.get('job')) watch();

async function watch() {
  const { api, datastore, job } = Object.fromEntries(new FormData(form));
  const url = `${api.replace(/\/+$/, '')}/datastores/${encodeURIComponent(datastore)}/export-jobs/${encodeURIComponent(job)}`;
  setState('watching', `Watching ${url}`);
  try {
    const final = await watchExportJob(url, { onResponse: show });
    setState('done', `${final.status} is terminal: polling stopped.`);
  } catch (e) {
    if (e instanceof ProblemError) {
      showProblem(e.problem);
      setState('problem', `The API answered ${e.problem.status}: polling stopped.`);
    } else {
      // fetch rejects with a TypeError, and says no more, on purpose: the page may not learn
      // whether the network failed or the API refused its origin (the console says which).
      root.dataset.error = e.name;
      setState('failed', `No answer this page may read (${e.name}: ${e.message}). Either the API is ` +
        `unreachable, or it does not allow this page's origin, ${location.origin} (ALLOWED_ORIGINS).`);
    }
  }
}

let lastStatus = null;

function show({ status, job, problem, etag, retryAfter, waitMs }) {
  count('polls');
  if (status === 304) count('notModified');
  if (etag) count('etags');
  if (retryAfter !== null) count('retryAfters');
  const terminal = status === 200 && job.terminal;
  const then = terminal ? 'stop' : problem && status !== 429 && status !== 503 ? 'stop' : `wait ${waitMs / 1000} s`;
  const row = addRow('requests', [root.dataset.polls, clock(), status, etag ?? '', retryAfter ?? '', then]);
  row.className = status >= 400 ? `status-${String(status)[0]}xx` : `status-${status}`;
  Object.assign(row.dataset, { status, at: performance.now(), waitMs });

  if (status === 200) {
    $('problem').hidden = true;
    showJob(job);
    if (job.status !== lastStatus) {
      lastStatus = job.status;
      addRow('history', [clock(), job.status, job.terminal ? 'yes' : 'no']).dataset.status = job.status;
    }
  }
  if (problem && !terminal && (status === 429 || status === 503)) {
    showProblem(problem);
    setState('retrying', `The API is busy (${status}): asking again in ${waitMs / 1000} s, as its Retry-After says.`);
  } else if (!terminal && !problem) {
    setState('watching', `${job.status}: ${status === 304 ? 'no change (304)' : 'updated'}; ` +
      `next request in ${waitMs / 1000} s, as Retry-After says.`);
  }
}

function showJob(job) {
  $('job').hidden = false;
  $('job-id').textContent = job.jobId;
  $('job-status').textContent = job.status;
  $('job-status').className = `badge ${job.status}`;
  $('job-name').textContent = job.jobName ?? '—';
  $('job-submitted').textContent = job.submittedAt;
  $('job-ended').textContent = job.endedAt ?? '—';
  $('job-output').textContent = job.outputS3Uri ?? '—';
  $('job-message').textContent = job.message ?? '—';
}

function showProblem(problem) {
  $('problem').hidden = false;
  $('problem-title').textContent = problem.title;
  $('problem-detail').textContent = problem.detail;
  $('problem-status').textContent = problem.status;
  $('problem-request-id').textContent = problem.requestId ?? '—';
  $('problem-type').textContent = problem.type ?? '—';
}

function setState(state, note) {
  root.dataset.state = state;
  $('note').textContent = note;
}

function count(name) {
  root.dataset[name] = Number(root.dataset[name]) + 1;
}

function addRow(table, cells) {
  const row = $(table).tBodies[0].insertRow();
  for (const text of cells) row.insertCell().textContent = text;
  return row;
}

/** Local time with milliseconds: 14:03:07.215 */
function clock() {
  const now = new Date();
  return `${now.toTimeString().slice(0, 8)}.${String(now.getMilliseconds()).padStart(3, '0')}`;
}
