//! Staff of the console (issue 13): roles, what each may do and where
//! ([`can`]), the operator password policy and the argon2id password hash.
//!
//! Pure: the salt of a new hash comes in as an argument (the caller draws
//! it), and nothing here reads a clock or the database. Every console
//! handler asks [`can`] — one table, so a role's permissions are read and
//! tested in one place (docs/ARCHITECTURE.md, "Staff roles").

use crate::{AreaId, BuildingId};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

/// An operator's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including operators and API keys.
    Administrator,
    /// Counter sales and their shift, in the operator's areas.
    Cashier,
    /// The meters, orders and notices of named buildings only.
    BuildingManager,
    /// Reads everything, the audit log included; changes nothing.
    Auditor,
}

impl Role {
    /// Every role, in the order the console lists them.
    pub const ALL: [Role; 4] = [
        Role::Administrator,
        Role::Cashier,
        Role::BuildingManager,
        Role::Auditor,
    ];

    /// The stored and command-line name (`building_manager`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Cashier => "cashier",
            Role::BuildingManager => "building_manager",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a stored or command-line name (`building-manager` also).
    pub fn parse(s: &str) -> Option<Role> {
        let s = s.replace('-', "_");
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the role holds `action` at all (where is [`can`]'s question).
    pub fn holds(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Administrator => true,
            Role::Cashier => matches!(
                action,
                ViewConsole
                    | ChangeOwnPassword
                    | ViewMeters
                    | ViewOrders
                    | SellAtCounter
                    | ViewShifts
            ),
            Role::BuildingManager => matches!(
                action,
                ViewConsole
                    | ChangeOwnPassword
                    | ViewMeters
                    | ViewOrders
                    | PublishNotice
                    | ControlRelay
                    | ViewReports
            ),
            Role::Auditor => !action.is_write() || action == ChangeOwnPassword,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something an operator does in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Open the console at all.
    ViewConsole,
    /// Change one's own password (old password required).
    ChangeOwnPassword,
    /// Read the audit log and export it.
    ViewAudit,
    /// List operators.
    ViewOperators,
    /// Create and disable operators.
    ManageOperators,
    /// Create and revoke API keys.
    ManageApiKeys,
    /// Look meters up (balance, state, recent orders).
    ViewMeters,
    /// Search orders and read an order's story.
    ViewOrders,
    /// Sell at the counter (and keep one's shift).
    SellAtCounter,
    /// Refund, re-deliver or resolve a flagged order.
    ResolveOrders,
    /// Create, edit and schedule notices.
    PublishNotice,
    /// Reset a meter's verification password.
    ResetMeterPassword,
    /// Read counter shifts and their cash-ups (a cashier: only their own).
    ViewShifts,
    /// Sign a closed shift's cash-up off.
    SignOffShift,
    /// Create, edit and retire areas, buildings, rooms, gateways, buses
    /// and meters, one by one or by import (issue 14 items 1–2).
    ManageRegistry,
    /// Replace a room's meter, carrying its energy over (issue 14 item 3).
    ReplaceMeter,
    /// Trip, close or keep power on a meter's relay (issue 14 item 5).
    ControlRelay,
    /// Set prices, allowances, thresholds, power hours and meter
    /// parameters (issue 14 item 6).
    ManagePolicy,
    /// Read the reports and export them (issue 14 item 7).
    ViewReports,
}

impl Action {
    /// Every action (for the permission table's tests and docs).
    pub const ALL: [Action; 19] = [
        Action::ViewConsole,
        Action::ChangeOwnPassword,
        Action::ViewAudit,
        Action::ViewOperators,
        Action::ManageOperators,
        Action::ManageApiKeys,
        Action::ViewMeters,
        Action::ViewOrders,
        Action::SellAtCounter,
        Action::ResolveOrders,
        Action::PublishNotice,
        Action::ResetMeterPassword,
        Action::ViewShifts,
        Action::SignOffShift,
        Action::ManageRegistry,
        Action::ReplaceMeter,
        Action::ControlRelay,
        Action::ManagePolicy,
        Action::ViewReports,
    ];

    /// Whether the action changes anything (an auditor's are all refused
    /// but changing their own password).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Action::ViewConsole
                | Action::ViewAudit
                | Action::ViewOperators
                | Action::ViewMeters
                | Action::ViewOrders
                | Action::ViewShifts
                | Action::ViewReports
        )
    }

    /// A stable name for the audit log (`manage_operators`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ViewConsole => "view_console",
            Action::ChangeOwnPassword => "change_own_password",
            Action::ViewAudit => "view_audit",
            Action::ViewOperators => "view_operators",
            Action::ManageOperators => "manage_operators",
            Action::ManageApiKeys => "manage_api_keys",
            Action::ViewMeters => "view_meters",
            Action::ViewOrders => "view_orders",
            Action::SellAtCounter => "sell_at_counter",
            Action::ResolveOrders => "resolve_orders",
            Action::PublishNotice => "publish_notice",
            Action::ResetMeterPassword => "reset_meter_password",
            Action::ViewShifts => "view_shifts",
            Action::SignOffShift => "sign_off_shift",
            Action::ManageRegistry => "manage_registry",
            Action::ReplaceMeter => "replace_meter",
            Action::ControlRelay => "control_relay",
            Action::ManagePolicy => "manage_policy",
            Action::ViewReports => "view_reports",
        }
    }
}

/// Where an operator may act: all areas or some, and — for a building
/// manager — the named buildings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// `None`: every area (also areas created later).
    pub areas: Option<Vec<AreaId>>,
    /// The buildings of a building manager (ignored for other roles).
    pub buildings: Vec<BuildingId>,
}

impl Scope {
    /// Every area.
    pub fn everywhere() -> Self {
        Scope::default()
    }

    /// Whether area `a` is in the scope.
    pub fn has_area(&self, a: AreaId) -> bool {
        self.areas.as_ref().is_none_or(|v| v.contains(&a))
    }
}

/// Where an action takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Not tied to a place (the audit log, operators, one's password;
    /// lists that the store filters by the scope).
    Console,
    /// Everything of one area (an area-wide notice, an area's report).
    Area(AreaId),
    /// One building of an area (its meters, orders, a notice for it).
    Building(AreaId, BuildingId),
}

/// Whether an operator of `role` with `scope` may do `action` at `place`.
///
/// The role must hold the action ([`Role::holds`]); an area or building
/// must be in the operator's areas; a building manager acts only on their
/// buildings (an area-wide action is beyond them).
pub fn can(role: Role, action: Action, scope: &Scope, place: Place) -> bool {
    if !role.holds(action) {
        return false;
    }
    match place {
        Place::Console => true,
        Place::Area(a) => scope.has_area(a) && role != Role::BuildingManager,
        Place::Building(a, b) => {
            scope.has_area(a) && (role != Role::BuildingManager || scope.buildings.contains(&b))
        }
    }
}

/// Fewest characters of an operator password.
pub const PASSWORD_CHARS_MIN: usize = 10;
/// Most characters of an operator password (a bound on hashing work).
pub const PASSWORD_CHARS_MAX: usize = 128;

/// Why a new operator password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Shorter than [`PASSWORD_CHARS_MIN`].
    #[error("the password is too short: at least {PASSWORD_CHARS_MIN} characters")]
    TooShort,
    /// Longer than [`PASSWORD_CHARS_MAX`].
    #[error("the password is too long: at most {PASSWORD_CHARS_MAX} characters")]
    TooLong,
    /// On the common-password list, the operator's name, or (nearly) one
    /// character repeated.
    #[error("the password is too common or too easy to guess; choose another")]
    Common,
}

/// Frequent passwords of public breach corpora that the length rule alone
/// lets through (10 characters or more), lower case, one a line.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Checks a new password for operator `name`.
pub fn check_new_password(password: &str, name: &str) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    if chars < PASSWORD_CHARS_MIN {
        return Err(WeakPassword::TooShort);
    }
    if chars > PASSWORD_CHARS_MAX {
        return Err(WeakPassword::TooLong);
    }
    let lower = password.to_lowercase();
    let distinct: HashSet<char> = lower.chars().collect();
    if COMMON.contains(lower.as_str())
        || distinct.len() < 4
        || (!name.is_empty() && lower.contains(&name.to_lowercase()))
    {
        return Err(WeakPassword::Common);
    }
    Ok(())
}

/// argon2id memory cost in KiB (19 MiB: OWASP's password storage
/// recommendation for argon2id at two passes).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// argon2id passes.
pub const ARGON2_ITERATIONS: u32 = 2;
/// argon2id lanes.
pub const ARGON2_LANES: u32 = 1;

fn argon2() -> argon2::Argon2<'static> {
    // The parameters are constants within argon2's limits; `DEFAULT` is
    // the same set should they ever be refused.
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .unwrap_or(argon2::Params::DEFAULT);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashing a password failed (a salt argon2 refuses).
#[derive(Debug, Clone, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// The argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of
/// `password` with the caller's random 16-byte `salt`.
pub fn hash_password(password: &str, salt: [u8; 16]) -> Result<String, HashError> {
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (with the parameters
/// recorded in it, so hashes made under older parameters still verify).
/// A malformed string matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: i64) -> AreaId {
        AreaId::new(n)
    }
    fn b(n: i64) -> BuildingId {
        BuildingId::new(n)
    }

    #[test]
    fn roles_round_trip_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("building-manager"), Some(Role::BuildingManager));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn an_auditor_reads_everything_and_writes_nothing_but_their_password() {
        let s = Scope::everywhere();
        for act in Action::ALL {
            let ok = can(Role::Auditor, act, &s, Place::Console);
            assert_eq!(
                ok,
                !act.is_write() || act == Action::ChangeOwnPassword,
                "{act:?}"
            );
        }
        assert!(can(Role::Auditor, Action::ViewAudit, &s, Place::Console));
        assert!(!can(
            Role::Auditor,
            Action::ManageOperators,
            &s,
            Place::Console
        ));
    }

    #[test]
    fn the_permission_table() {
        let s = Scope::everywhere();
        let here = Place::Area(a(1));
        let holds = |r: Role, act: Action| can(r, act, &s, Place::Console);
        for act in Action::ALL {
            assert!(holds(Role::Administrator, act), "{act:?}");
        }
        assert!(holds(Role::Cashier, Action::SellAtCounter));
        assert!(!holds(Role::Cashier, Action::ResolveOrders));
        assert!(!holds(Role::Cashier, Action::ViewAudit));
        assert!(!holds(Role::Cashier, Action::ManageOperators));
        assert!(holds(Role::BuildingManager, Action::PublishNotice));
        assert!(!holds(Role::BuildingManager, Action::SellAtCounter));
        assert!(holds(Role::BuildingManager, Action::ControlRelay));
        assert!(!holds(Role::BuildingManager, Action::ManageRegistry));
        assert!(!holds(Role::BuildingManager, Action::ManagePolicy));
        assert!(!holds(Role::BuildingManager, Action::ReplaceMeter));
        assert!(!holds(Role::Cashier, Action::ControlRelay));
        assert!(holds(Role::Auditor, Action::ViewReports));
        assert!(!holds(Role::Auditor, Action::ControlRelay));
        assert!(can(Role::Cashier, Action::SellAtCounter, &s, here));
    }

    #[test]
    fn areas_and_buildings_limit_where() {
        let one_area = Scope {
            areas: Some(vec![a(1)]),
            buildings: Vec::new(),
        };
        assert!(can(
            Role::Cashier,
            Action::SellAtCounter,
            &one_area,
            Place::Area(a(1))
        ));
        assert!(!can(
            Role::Cashier,
            Action::SellAtCounter,
            &one_area,
            Place::Area(a(2))
        ));
        assert!(!can(
            Role::Cashier,
            Action::SellAtCounter,
            &one_area,
            Place::Building(a(2), b(9))
        ));
        let manager = Scope {
            areas: Some(vec![a(1)]),
            buildings: vec![b(3)],
        };
        let m = Role::BuildingManager;
        assert!(can(
            m,
            Action::ViewMeters,
            &manager,
            Place::Building(a(1), b(3))
        ));
        assert!(!can(
            m,
            Action::ViewMeters,
            &manager,
            Place::Building(a(1), b(4))
        ));
        assert!(!can(m, Action::PublishNotice, &manager, Place::Area(a(1))));
        assert!(!can(
            m,
            Action::ViewMeters,
            &manager,
            Place::Building(a(2), b(3))
        ));
        // An administrator limited to an area is limited there too.
        assert!(!can(
            Role::Administrator,
            Action::ResolveOrders,
            &one_area,
            Place::Area(a(2))
        ));
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert_eq!(
            check_new_password("short1", "wang"),
            Err(WeakPassword::TooShort)
        );
        assert_eq!(
            check_new_password("123456789", "wang"),
            Err(WeakPassword::TooShort)
        );
        assert_eq!(
            check_new_password("1234567890", "wang"),
            Err(WeakPassword::Common)
        );
        assert_eq!(
            check_new_password("QwertyUiop", "wang"),
            Err(WeakPassword::Common)
        );
        assert_eq!(
            check_new_password("woaini1314", "wang"),
            Err(WeakPassword::Common)
        );
        assert_eq!(
            check_new_password("aaaaaaaaaaaa", "wang"),
            Err(WeakPassword::Common)
        );
        assert_eq!(
            check_new_password("wang-password-x", "Wang"),
            Err(WeakPassword::Common)
        );
        assert_eq!(
            check_new_password(&"x1".repeat(65), "wang"),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(check_new_password("电费充值很方便的密码", "wang"), Ok(()));
        assert_eq!(check_new_password("correct horse battery", "wang"), Ok(()));
        assert!(COMMON.len() > 1000, "the list loaded");
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_password("correct horse battery", [7; 16]).expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(
            h,
            hash_password("correct horse battery", [8; 16]).expect("hash")
        );
    }
}
