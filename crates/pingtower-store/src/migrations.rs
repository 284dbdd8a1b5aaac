//! Migrations, embedded in the binary. Each backend has its own folder of numbered SQL files;
//! both describe the same tables.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal),+ $(,)?) => {
        vec![$(Migration::new(
            $version,
            Cow::Borrowed($name),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(include_str!(concat!("../migrations/", $dir, "/", $name, ".sql"))),
            false,
        )),+]
    };
}

pub(crate) fn sqlite() -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrations!("sqlite": 1 "0001_initial", 2 "0002_stats", 3 "0003_minute_packs", 4 "0004_sessions_invitations"),
        ),
        ..Migrator::DEFAULT
    }
}

pub(crate) fn postgres() -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrations!("postgres": 1 "0001_initial", 2 "0002_stats", 3 "0003_minute_packs", 4 "0004_sessions_invitations"),
        ),
        ..Migrator::DEFAULT
    }
}
