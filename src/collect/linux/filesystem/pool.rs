//! A small growable pool of long-lived threads for blocking calls that may never return (statvfs
//! on a dead NFS server): a hung call ties up one thread, never the caller or the other calls.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Work handed to a thread. Jobs must not panic (the filesystem collector's catch their own).
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Stack for the threads: they only make one system call and send its answer.
const STACK_BYTES: usize = 128 * 1024;

/// The pool. A batch of jobs wakes one idle thread (or starts one when none is free), which runs
/// them in turn: a sample of fast calls costs one wake-up, not one per mount. When a call is slow
/// the caller [`rescues`](Pool::rescue) the jobs still queued behind it onto other threads, up to
/// `healthy_limit` threads not stuck in a slow job, so hung calls never starve the others.
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

/// What the pool and its threads share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when jobs are queued or the pool closes.
    wake: Condvar,
    /// At most this many threads that are idle or busy with a job younger than `slow_after`.
    healthy_limit: usize,
    /// A job running longer than this no longer counts against `healthy_limit`.
    slow_after: Duration,
    /// An idle thread beyond the first exits after waiting this long for work.
    idle_exit: Duration,
}

/// The queue and the thread accounting, under one lock.
#[derive(Default)]
struct State {
    /// Jobs not yet taken by a thread.
    queue: VecDeque<Job>,
    /// Threads waiting for work.
    idle: usize,
    /// Threads alive (idle, or running a job).
    threads: usize,
    /// When each running job started, keyed by a job number: tells slow threads from busy ones.
    running: Vec<(u64, Instant)>,
    /// Number of the next job taken.
    next_job: u64,
    /// Threads ever started (lets tests check that steady use spawns none).
    spawned: usize,
    /// Set when the pool is dropped: threads exit once the queue is empty.
    closed: bool,
}

impl Pool {
    pub fn new(healthy_limit: usize, slow_after: Duration, idle_exit: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                healthy_limit: healthy_limit.max(1),
                slow_after,
                idle_exit,
            }),
        }
    }

    /// Queues `jobs` for one thread to run in turn, starting a thread if none is free. Fails
    /// only when no thread exists and none can be started (the jobs are then dropped).
    pub fn submit(&self, jobs: Vec<Job>) -> std::io::Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let count = jobs.len();
        let mut state = self.shared.lock();
        state.queue.extend(jobs);
        // A thread that is idle or busy with a fast call takes the batch soon; only when every
        // thread is stuck in a slow call (or none exists) does the batch need a new one.
        if self.shared.healthy(&state, Instant::now()) == 0 {
            match self.shared.spawn(&mut state) {
                Ok(()) => {}
                Err(e) if state.threads == 0 => {
                    let keep = state.queue.len() - count;
                    state.queue.truncate(keep);
                    return Err(e);
                }
                // The threads there are will get to them.
                Err(_) => {}
            }
        }
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Hands jobs still queued (behind a slow call) to idle threads, and starts threads for the
    /// rest while fewer than `healthy_limit` are free of slow calls.
    pub fn rescue(&self) {
        self.rescue_at(Instant::now());
    }

    /// [`rescue`](Pool::rescue) with the slowness of running jobs judged at `now` (tests pass
    /// their own clock, so a loaded machine cannot make a job look slow or fast).
    fn rescue_at(&self, now: Instant) {
        let mut state = self.shared.lock();
        let queued = state.queue.len();
        let woken = queued.min(state.idle);
        // New threads only when a call is in fact slow: jobs still queued because a busy machine
        // has not scheduled the thread yet would not run sooner on more threads.
        let stuck = state.threads > self.shared.healthy(&state, now);
        let mut started = 0;
        while stuck
            && woken + started < queued
            && self.shared.healthy(&state, now) < self.shared.healthy_limit
        {
            if self.shared.spawn(&mut state).is_err() {
                break;
            }
            started += 1;
        }
        drop(state);
        for _ in 0..woken {
            self.shared.wake.notify_one();
        }
    }

    /// Threads alive now and ever started.
    #[cfg(test)]
    pub fn threads(&self) -> (usize, usize) {
        let state = self.shared.lock();
        (state.threads, state.spawned)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, so a poisoned lock still holds consistent counts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Threads not stuck in a job running since longer than `slow_after` at `now`.
    fn healthy(&self, state: &State, now: Instant) -> usize {
        let slow = state
            .running
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(*since) >= self.slow_after)
            .count();
        state.threads.saturating_sub(slow)
    }

    /// Starts a thread (it takes queued jobs at once).
    fn spawn(self: &Arc<Self>, state: &mut State) -> std::io::Result<()> {
        let shared = Arc::clone(self);
        std::thread::Builder::new()
            .name("statvfs".into())
            .stack_size(STACK_BYTES)
            .spawn(move || shared.work())?;
        state.threads += 1;
        state.spawned += 1;
        Ok(())
    }

    /// A thread's life: run queued jobs; wait when there are none; leave when closed, or when
    /// idle too long and not the last thread.
    fn work(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                let id = state.next_job;
                state.next_job += 1;
                state.running.push((id, Instant::now()));
                drop(state);
                job();
                state = self.lock();
                state.running.retain(|(job, _)| *job != id);
                continue;
            }
            if state.closed {
                break;
            }
            state.idle += 1;
            let (guard, wait) = self
                .wake
                .wait_timeout(state, self.idle_exit)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            state.idle -= 1;
            if wait.timed_out() && state.queue.is_empty() && state.threads > 1 {
                break;
            }
        }
        state.threads -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const LONG: Duration = Duration::from_secs(10);

    /// A job that reports `value` on `tx`.
    fn report(tx: &mpsc::Sender<i32>, value: i32) -> Job {
        let tx = tx.clone();
        Box::new(move || tx.send(value).unwrap())
    }

    /// A job that says it started, then holds its thread until `release` is dropped (or LONG).
    fn blocking(started: &mpsc::Sender<i32>, release: &Arc<Mutex<mpsc::Receiver<()>>>) -> Job {
        let (started, release) = (started.clone(), Arc::clone(release));
        Box::new(move || {
            started.send(0).unwrap();
            let release = release.lock().unwrap();
            while release.recv_timeout(LONG).is_ok() {}
        })
    }

    #[test]
    fn runs_batches_on_one_reused_thread() {
        // No job may count as slow however loaded the machine: this is about reuse.
        let pool = Pool::new(4, LONG, LONG);
        let (tx, rx) = mpsc::channel();
        for round in 0..20 {
            pool.submit((0..5).map(|i| report(&tx, round * 10 + i)).collect())
                .unwrap();
            let got: Vec<i32> = (0..5).map(|_| rx.recv_timeout(LONG).unwrap()).collect();
            assert_eq!(got, (0..5).map(|i| round * 10 + i).collect::<Vec<_>>());
        }
        assert_eq!(pool.threads(), (1, 1), "one thread served every batch");
        pool.submit(Vec::new()).unwrap();
    }

    #[test]
    fn rescue_moves_jobs_queued_behind_a_hung_one() {
        let pool = Pool::new(1, Duration::from_millis(20), LONG);
        let (started, started_rx) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let release = Arc::new(Mutex::new(release));
        let (tx, rx) = mpsc::channel();
        pool.submit(vec![blocking(&started, &release), report(&tx, 7)])
            .unwrap();
        started_rx.recv_timeout(LONG).unwrap();
        assert!(rx.try_recv().is_err(), "queued behind the hung job");
        // The only healthy thread is slow once 20 ms have passed: rescue starts another for the
        // queued job.
        pool.rescue_at(Instant::now() + Duration::from_millis(20));
        assert_eq!(rx.recv_timeout(LONG).unwrap(), 7);
        // A new batch does not wait for the hung thread either.
        pool.submit(vec![report(&tx, 8)]).unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), 8);
        assert_eq!(pool.threads(), (2, 2));
        drop(release_tx);
    }

    #[test]
    fn idle_threads_beyond_one_exit() {
        let slow_after = Duration::from_millis(10);
        let pool = Pool::new(3, slow_after, Duration::from_millis(20));
        let (started, started_rx) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let release = Arc::new(Mutex::new(release));
        let before = Instant::now();
        pool.submit((0..3).map(|_| blocking(&started, &release)).collect())
            .unwrap();
        started_rx.recv_timeout(LONG).unwrap();
        pool.rescue_at(before);
        assert_eq!(
            pool.threads().1,
            1,
            "no thread is slow yet: nothing to rescue from"
        );
        pool.rescue_at(Instant::now() + slow_after);
        for _ in 0..2 {
            started_rx.recv_timeout(LONG).unwrap();
        }
        assert_eq!(
            pool.threads(),
            (3, 3),
            "three jobs blocked at once on three threads"
        );
        drop(release_tx);
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.threads().0 > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(pool.threads().0, 1);
    }
}
