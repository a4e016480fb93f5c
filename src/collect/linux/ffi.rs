//! The two C library calls the Linux collectors need and no dependency wraps, behind safe
//! functions: adjtimex(2) for the `timex` collector (rustix has no binding for it) and
//! localtime_r(3) for the `time` collector's zone name and offset (the C library reads `TZ` and
//! /etc/localtime as Go's `time.Local` does). All of the Linux backend's `unsafe` is here.

#![allow(unsafe_code)]

use std::ffi::CStr;

/// The kernel clock's state as adjtimex(2) reports it; the units are the kernel's (see
/// [`Timex::status`] for the one that depends on `STA_NANO`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timex {
    /// adjtimex's return value: the clock state (`TIME_OK`, …, `TIME_ERROR` = 5).
    pub state: i32,
    /// Time offset, ns with `STA_NANO` in `status`, else µs.
    pub offset: i64,
    /// Frequency offset, ppm with a 16-bit fraction.
    pub freq: i64,
    /// Maximum and estimated error, µs.
    pub maxerror: i64,
    pub esterror: i64,
    /// The `STA_*` bits.
    pub status: i32,
    /// PLL time constant.
    pub constant: i64,
    /// µs between clock ticks.
    pub tick: i64,
    /// PPS frequency (ppm, 16-bit fraction), jitter (ns or µs as `offset`), interval (s, log2),
    /// stability (ppm, 16-bit fraction) and event counters.
    pub ppsfreq: i64,
    pub jitter: i64,
    pub shift: i32,
    pub stabil: i64,
    pub jitcnt: i64,
    pub calcnt: i64,
    pub errcnt: i64,
    pub stbcnt: i64,
    /// TAI − UTC, seconds.
    pub tai: i32,
}

/// Reads the kernel clock's state (adjtimex with no mode bits set: a read, allowed to anyone).
// The field types are `c_long` or `c_longlong` depending on the target; all fit in i64.
#[allow(clippy::useless_conversion)]
pub fn adjtimex() -> std::io::Result<Timex> {
    // SAFETY: `timex` is a plain C struct for which all zeroes is a valid value; `modes` = 0
    // asks for a read only. The kernel writes into the struct we own and nothing outlives the call.
    let (state, t) = unsafe {
        let mut t: libc::timex = std::mem::zeroed();
        (libc::adjtimex(&mut t), t)
    };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Timex {
        state,
        offset: i64::from(t.offset),
        freq: i64::from(t.freq),
        maxerror: i64::from(t.maxerror),
        esterror: i64::from(t.esterror),
        status: t.status,
        constant: i64::from(t.constant),
        tick: i64::from(t.tick),
        ppsfreq: i64::from(t.ppsfreq),
        jitter: i64::from(t.jitter),
        shift: t.shift,
        stabil: i64::from(t.stabil),
        jitcnt: i64::from(t.jitcnt),
        calcnt: i64::from(t.calcnt),
        errcnt: i64::from(t.errcnt),
        stbcnt: i64::from(t.stbcnt),
        tai: t.tai,
    })
}

/// The local time zone's abbreviation (`UTC`, `CEST`) and offset east of UTC in seconds at
/// `unix_seconds`; `None` if the C library cannot tell.
#[allow(clippy::useless_conversion)] // `tm_gmtoff` is a `c_long`: i32 on 32-bit targets
pub fn local_zone(unix_seconds: i64) -> Option<(String, i64)> {
    let time = libc::time_t::try_from(unix_seconds).ok()?;
    // SAFETY: localtime_r writes only into `tm`, which we own; all zeroes is a valid `tm`.
    // `tm_zone` points into the C library's time zone data, which stays valid until the zone is
    // loaded again (`tzset`): it is copied out before this function returns.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return None;
        }
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned()
        };
        Some((zone, i64::from(tm.tm_gmtoff)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_can_be_read_by_anyone() {
        let timex = adjtimex().expect("adjtimex with modes 0 needs no privilege");
        // Every Linux kernel ticks at a few hundred to a thousand Hz: 1000 to 10000 µs.
        assert!((1000..=10_000).contains(&timex.tick), "{timex:?}");
        assert!((0..=5).contains(&timex.state), "{timex:?}");
    }

    #[test]
    fn the_local_zone_has_a_name_and_an_offset_within_a_day() {
        let (zone, offset) = local_zone(1_700_000_000).expect("a local zone");
        assert!(!zone.is_empty());
        assert!(offset.abs() <= 86_400, "{offset}");
    }
}
