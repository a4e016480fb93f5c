//! What the NVIDIA collector adds to a sample beyond the NVML calls themselves.
//!
//! Both benches run against the fake NVML library (`fakes/nvml`) with 8 GPUs, 2 compute
//! processes each:
//! - `nvidia/collect_8_gpus`: one `collect` of the real collector (nvml-wrapper, the model, the
//!   unsupported-query bookkeeping, processes), as the sampler runs it each sample.
//! - `nvidia/fake_calls_8_gpus`: the same C calls, in the same order and number, made directly on
//!   the fake through libloading: the fake's own cost, which a real driver replaces with its own.
//!
//! The difference is the collector's overhead; the goal is ≤ 1 ms per sample for 8 GPUs. The
//! bench checks first that both make the same number of calls (the fake counts them), then prints
//! the difference measured in the same run.

#[path = "../tests/common/fakes.rs"]
mod fakes;

use std::ffi::{c_uint, c_ulonglong, c_void};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use libloading::{Library, Symbol};
use system_monitor::collect::accel::nvidia;
use system_monitor::config::CollectConfig;
use system_monitor::model::Snapshot;

const GPUS: u32 = 8;

type Handle = *mut c_void;
type Ret = c_uint;

/// The fake's exported functions, resolved once: each field is the NVML function of that
/// meaning (named in `resolve`), called as the collector calls it.
struct Calls<'lib> {
    /// The 8 GPUs' handles.
    handles: Vec<Handle>,
    utilization: Symbol<'lib, unsafe extern "C" fn(Handle, *mut [c_uint; 2]) -> Ret>,
    encoder: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint, *mut c_uint) -> Ret>,
    decoder: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint, *mut c_uint) -> Ret>,
    memory: Symbol<'lib, unsafe extern "C" fn(Handle, *mut [c_ulonglong; 5]) -> Ret>,
    temperature: Symbol<'lib, unsafe extern "C" fn(Handle, c_uint, *mut c_uint) -> Ret>,
    field_values: Symbol<'lib, unsafe extern "C" fn(Handle, i32, *mut [u64; 5]) -> Ret>,
    power: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint) -> Ret>,
    power_limit: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint) -> Ret>,
    energy: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_ulonglong) -> Ret>,
    clock: Symbol<'lib, unsafe extern "C" fn(Handle, c_uint, *mut c_uint) -> Ret>,
    fan: Symbol<'lib, unsafe extern "C" fn(Handle, c_uint, *mut c_uint) -> Ret>,
    pcie: Symbol<'lib, unsafe extern "C" fn(Handle, c_uint, *mut c_uint) -> Ret>,
    link_gen: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint) -> Ret>,
    link_width: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint) -> Ret>,
    pstate: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint) -> Ret>,
    throttle: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_ulonglong) -> Ret>,
    ecc: Symbol<'lib, unsafe extern "C" fn(Handle, c_uint, c_uint, *mut c_ulonglong) -> Ret>,
    compute: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint, *mut [u8; 24]) -> Ret>,
    graphics: Symbol<'lib, unsafe extern "C" fn(Handle, *mut c_uint, *mut [u8; 24]) -> Ret>,
}

impl<'lib> Calls<'lib> {
    fn resolve(lib: &'lib Library) -> Calls<'lib> {
        // SAFETY: the fake exports these with these C signatures (fakes/nvml/src/lib.rs); the
        // struct out-parameters are passed as byte-compatible arrays of the same size.
        unsafe {
            let handle_by_index: Symbol<unsafe extern "C" fn(c_uint, *mut Handle) -> Ret> =
                sym(lib, "nvmlDeviceGetHandleByIndex_v2");
            let handles = (0..GPUS)
                .map(|i| {
                    let mut h: Handle = std::ptr::null_mut();
                    assert_eq!(handle_by_index(i, &mut h), 0, "no handle for GPU {i}");
                    h
                })
                .collect();
            Calls {
                handles,
                utilization: sym(lib, "nvmlDeviceGetUtilizationRates"),
                encoder: sym(lib, "nvmlDeviceGetEncoderUtilization"),
                decoder: sym(lib, "nvmlDeviceGetDecoderUtilization"),
                memory: sym(lib, "nvmlDeviceGetMemoryInfo_v2"),
                temperature: sym(lib, "nvmlDeviceGetTemperature"),
                field_values: sym(lib, "nvmlDeviceGetFieldValues"),
                power: sym(lib, "nvmlDeviceGetPowerUsage"),
                power_limit: sym(lib, "nvmlDeviceGetEnforcedPowerLimit"),
                energy: sym(lib, "nvmlDeviceGetTotalEnergyConsumption"),
                clock: sym(lib, "nvmlDeviceGetClockInfo"),
                fan: sym(lib, "nvmlDeviceGetFanSpeed_v2"),
                pcie: sym(lib, "nvmlDeviceGetPcieThroughput"),
                link_gen: sym(lib, "nvmlDeviceGetCurrPcieLinkGeneration"),
                link_width: sym(lib, "nvmlDeviceGetCurrPcieLinkWidth"),
                pstate: sym(lib, "nvmlDeviceGetPerformanceState"),
                throttle: sym(lib, "nvmlDeviceGetCurrentClocksThrottleReasons"),
                ecc: sym(lib, "nvmlDeviceGetTotalEccErrors"),
                compute: sym(lib, "nvmlDeviceGetComputeRunningProcesses_v3"),
                graphics: sym(lib, "nvmlDeviceGetGraphicsRunningProcesses_v3"),
            }
        }
    }

    /// One sample's calls for every GPU, as the collector makes them.
    fn sample(&self) -> u64 {
        let mut sink = 0u64;
        let (mut a, mut b, mut wide) = (0 as c_uint, 0 as c_uint, 0 as c_ulonglong);
        // SAFETY: see `resolve`; every out-pointer is a live local.
        unsafe {
            for &h in &self.handles {
                let mut pair = [0; 2];
                (self.utilization)(h, &mut pair);
                (self.encoder)(h, &mut a, &mut b);
                (self.decoder)(h, &mut a, &mut b);
                let mut memory = [0; 5];
                memory[0] = 40 | (2 << 24);
                (self.memory)(h, &mut memory);
                (self.temperature)(h, 0, &mut a);
                // One nvmlFieldValue_t (40 bytes), field NVML_FI_DEV_MEMORY_TEMP.
                let mut field = [82u64, 0, 0, 0, 0];
                (self.field_values)(h, 1, &mut field);
                sink += field[4];
                (self.power)(h, &mut a);
                (self.power_limit)(h, &mut a);
                (self.energy)(h, &mut wide);
                for clock in [1, 2, 0] {
                    (self.clock)(h, clock, &mut a);
                }
                (self.fan)(h, 0, &mut a);
                (self.pcie)(h, 0, &mut a);
                (self.pcie)(h, 1, &mut b);
                (self.link_gen)(h, &mut a);
                (self.link_width)(h, &mut a);
                (self.pstate)(h, &mut a);
                (self.throttle)(h, &mut wide);
                (self.ecc)(h, 0, 0, &mut wide);
                (self.ecc)(h, 1, 0, &mut wide);
                // Processes: ask the count, then fill (nvml-wrapper's way); none: one call.
                for list in [&self.compute, &self.graphics] {
                    let mut count: c_uint = 0;
                    list(h, &mut count, std::ptr::null_mut());
                    if count > 0 {
                        let mut buf = vec![[0u8; 24]; count as usize + 5];
                        count += 5;
                        list(h, &mut count, buf.as_mut_ptr());
                        sink += u64::from(buf[0][0]);
                    }
                }
                sink += u64::from(pair[0]) + memory[4] + u64::from(a) + wide;
            }
        }
        sink
    }
}

unsafe fn sym<'lib, T>(lib: &'lib Library, name: &str) -> Symbol<'lib, T> {
    lib.get(name.as_bytes())
        .unwrap_or_else(|e| panic!("the fake lacks {name}: {e}"))
}

fn total_calls(lib: &Library) -> u64 {
    // SAFETY: exported by the fake with this signature.
    unsafe {
        let total: Symbol<unsafe extern "C" fn() -> u64> = sym(lib, "fake_nvml_total_calls");
        total()
    }
}

/// Mean time of `f` over `n` runs, the best of `rounds` rounds.
fn best_mean(rounds: u32, n: u32, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed() / n
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let library_path = fakes::fake_library("fake_nvml");
    let dir = tempfile::tempdir().expect("temporary directory");
    let config_path = dir.path().join("config");
    std::fs::write(&config_path, format!("devices={GPUS}\nprocesses=2\n")).expect("fake config");
    // Read by the fake at nvmlInit_v2, below; nothing else runs yet.
    std::env::set_var("FAKE_NVML_CONFIG", &config_path);

    let mut config = CollectConfig::default();
    config.accel.nvml_library = Some(library_path.clone());
    let mut collector = nvidia::collector(&config).expect("the fake lists 8 GPUs");
    // SAFETY: the fake's initialiser only reads its configuration; the collector already
    // loaded the same file, so this shares its state (and call counters).
    let lib = unsafe { Library::new(&library_path) }.expect("loading the fake");
    let calls = Calls::resolve(&lib);

    let mut collect = || {
        let mut snapshot = Snapshot::default();
        let result = collector.collect(&mut snapshot);
        assert_eq!(snapshot.accelerators.len(), GPUS as usize, "{result:?}");
        black_box(snapshot);
    };

    // Both make the same calls, or the subtraction means nothing.
    collect();
    let before = total_calls(&lib);
    collect();
    let by_collector = total_calls(&lib) - before;
    let before = total_calls(&lib);
    black_box(calls.sample());
    let direct = total_calls(&lib) - before;
    assert_eq!(
        by_collector, direct,
        "the direct calls do not mirror the collector's"
    );

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("nvidia");
    group.bench_function("collect_8_gpus", |b| b.iter(&mut collect));
    group.bench_function("fake_calls_8_gpus", |b| {
        b.iter(|| black_box(calls.sample()))
    });
    group.finish();
    criterion.final_summary();

    let full = best_mean(5, 2000, &mut collect);
    let fake = best_mean(5, 2000, || {
        black_box(calls.sample());
    });
    println!(
        "nvidia, {GPUS} GPUs, {by_collector} NVML calls per sample: collect {:.1} µs, \
         the fake's calls alone {:.1} µs, collector overhead {:.1} µs per sample (goal ≤ 1000 µs)",
        full.as_secs_f64() * 1e6,
        fake.as_secs_f64() * 1e6,
        (full.as_secs_f64() - fake.as_secs_f64()) * 1e6,
    );
}
