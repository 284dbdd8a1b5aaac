//! Check results: the outcome of one check of one monitor from one region.

use crate::{MonitorId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

crate::wire_enum! {
    /// The outcome of one check.
    pub enum CheckStatus ("check status") {
        Up => "up",
        Down => "down",
        Degraded => "degraded",
    }
}

impl CheckStatus {
    /// The compact code stored in result rows.
    pub const fn code(self) -> i16 {
        match self {
            CheckStatus::Up => 0,
            CheckStatus::Down => 1,
            CheckStatus::Degraded => 2,
        }
    }

    pub const fn from_code(code: i16) -> Option<Self> {
        match code {
            0 => Some(CheckStatus::Up),
            1 => Some(CheckStatus::Down),
            2 => Some(CheckStatus::Degraded),
            _ => None,
        }
    }
}

/// One check's outcome. A failed check is a result with status `down` and a reason, never an
/// error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub monitor_id: MonitorId,
    /// The monitor's compact key (see [`crate::Monitor::seq`]).
    pub monitor_seq: i64,
    pub tenant_id: TenantId,
    pub region: String,
    /// When the check started.
    pub checked_at: Timestamp,
    pub status: CheckStatus,
    /// Total time of the check, in microseconds.
    pub latency_us: i64,
    /// Why the check is not UP (absent when it is).
    pub reason: Option<String>,
    /// Timings, assertion outcomes and kind-specific figures, as JSON.
    pub details: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in CheckStatus::ALL {
            assert_eq!(CheckStatus::from_code(s.code()), Some(*s));
        }
        assert_eq!(CheckStatus::from_code(9), None);
    }
}
