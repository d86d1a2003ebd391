//! Wall-clock helpers producing API timestamps (second precision, as the API stores them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

pub fn unix_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// A Time from nanoseconds since the epoch, truncated to seconds.
pub fn time_from_nanos(n: i64) -> Time {
    Time(Timestamp::from_second(n.div_euclid(1_000_000_000)).unwrap_or(Timestamp::UNIX_EPOCH))
}

pub fn now_time() -> Time {
    time_from_nanos((unix_nanos()) as i64)
}

pub fn now_micro() -> MicroTime {
    let n = unix_nanos();
    let micros = n.div_euclid(1000) as i64;
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Seconds since the epoch of an API time.
pub fn time_secs(t: &Time) -> i64 {
    t.0.as_second()
}

pub fn system_time(t: &Time) -> SystemTime {
    let s = t.0.as_second();
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s as u64)
    } else {
        UNIX_EPOCH
    }
}

pub fn now_secs() -> i64 {
    (unix_nanos() / 1_000_000_000) as i64
}
