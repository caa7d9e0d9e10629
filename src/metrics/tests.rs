use super::*;

fn job(storage: &str, path: &str) -> Job {
    Job {
        storage_name: storage.into(),
        relative_path: path.into(),
        ..Job::default()
    }
}

fn run(exit_code: i32, last_success: f64) -> RunValues {
    RunValues {
        started_at: 1_700_000_000.0,
        duration: 12.5,
        exit_code,
        last_success,
    }
}

#[test]
fn events_are_counted_by_storage_and_result_and_passed_on() {
    struct Seen(Mutex<usize>);
    impl Progress for Seen {
        fn job_event(&self, _: CommandName, _: &Job, _: Event<'_>) {
            *self.0.lock().unwrap() += 1;
        }
    }
    let seen = Arc::new(Seen(Mutex::new(0)));
    let recorder = Recorder::start(MetricsCommand::Create, PathBuf::from("unused.prom"));
    let progress = recorder.observe(seen.clone());
    let command = CommandName::Create;
    let written = crate::job::progress::Completion {
        bytes: 4096,
        ..Default::default()
    };
    for (job, end) in [
        (
            job("default", "a.git"),
            Some(Event::Completed {
                details: Some(&written),
            }),
        ),
        (
            job("default", "b.git"),
            Some(Event::Failed { error: "boom" }),
        ),
        (
            job("other", "c.git"),
            Some(Event::Skipped { reason: "done" }),
        ),
        (job("other", "d.git"), None),
        (
            job("bad name/", "e.git"),
            Some(Event::Failed { error: "bad" }),
        ),
    ] {
        progress.job_event(command, &job, Event::Started);
        if let Some(end) = end {
            progress.job_event(command, &job, end);
        }
    }
    assert_eq!(*seen.0.lock().unwrap(), 9);
    let rendered = text::render(&families(
        MetricsCommand::Create,
        &run(1, 0.0),
        &recorder.lock(),
    ));
    let repositories: Vec<&str> = rendered
        .lines()
        .filter(|line| line.starts_with("gitbak_last_run_repositories{"))
        .collect();
    assert!(
        rendered.contains("\ngitbak_last_run_bytes_written{command=\"create\"} 4096\n"),
        "{rendered}"
    );
    assert_eq!(
        repositories,
        [
            "gitbak_last_run_repositories{command=\"create\",storage=\"(invalid)\",result=\"failed\"} 1",
            "gitbak_last_run_repositories{command=\"create\",storage=\"default\",result=\"completed\"} 1",
            "gitbak_last_run_repositories{command=\"create\",storage=\"default\",result=\"failed\"} 1",
            "gitbak_last_run_repositories{command=\"create\",storage=\"other\",result=\"skipped\"} 1",
            "gitbak_last_run_repositories{command=\"create\",storage=\"other\",result=\"interrupted\"} 1",
        ]
    );
}

#[test]
fn a_run_renders_its_outcome_and_verify_its_counts() {
    let counts = Counts {
        verify: Some(VerifyCounts {
            backups: 2,
            repositories: 3,
            files: 4,
            bytes: 5,
            broken_backups: 1,
            broken_repositories: 1,
            broken_files: 1,
            ..VerifyCounts::default()
        }),
        verified: BTreeMap::from([("default".to_owned(), (3, 1))]),
        ..Counts::default()
    };
    let rendered = text::render(&families(
        MetricsCommand::Verify,
        &run(3, 1_600_000_000.0),
        &counts,
    ));
    for line in [
        "# TYPE gitbak_last_run_success gauge",
        "gitbak_last_run_success{command=\"verify\"} 0",
        "gitbak_last_run_exit_code{command=\"verify\"} 3",
        "gitbak_last_run_duration_seconds{command=\"verify\"} 12.5",
        "gitbak_last_run_timestamp_seconds{command=\"verify\"} 1700000000",
        "gitbak_last_success_timestamp_seconds{command=\"verify\"} 1600000000",
        "gitbak_last_run_checked_bytes{command=\"verify\"} 5",
        "gitbak_last_run_broken_files{command=\"verify\"} 1",
        "gitbak_last_run_checked_repositories_by_storage{command=\"verify\",storage=\"default\"} 3",
        "gitbak_last_run_broken_repositories_by_storage{command=\"verify\",storage=\"default\"} 1",
    ] {
        assert!(rendered.lines().any(|l| l == line), "{line}\n{rendered}");
    }
    assert!(!rendered.contains("gitbak_last_run_repositories"));
}

#[test]
fn a_failed_run_keeps_the_last_success_and_other_commands_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gitbak.prom");
    std::fs::write(
        &path,
        "# HELP gitbak_last_success_timestamp_seconds x\n\
         # TYPE gitbak_last_success_timestamp_seconds gauge\n\
         gitbak_last_success_timestamp_seconds{command=\"create\"} 1600000000\n\
         gitbak_last_success_timestamp_seconds{command=\"verify\"} 1500000000\n",
    )
    .unwrap();
    let recorder = Recorder::start(MetricsCommand::Create, path.clone());
    recorder.write(1).unwrap();
    let families = text::parse(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(
        text::value_of(&families, LAST_SUCCESS, "create"),
        Some(1_600_000_000.0)
    );
    assert_eq!(
        text::value_of(&families, LAST_SUCCESS, "verify"),
        Some(1_500_000_000.0)
    );
    assert_eq!(
        text::value_of(&families, "gitbak_last_run_success", "create"),
        Some(0.0)
    );

    let recorder = Recorder::start(MetricsCommand::Create, path.clone());
    recorder.write(0).unwrap();
    let families = text::parse(&std::fs::read_to_string(&path).unwrap());
    let last = text::value_of(&families, LAST_SUCCESS, "create").unwrap();
    assert!(last >= recorder.started_at, "{last}");
    assert_eq!(
        text::value_of(&families, LAST_SUCCESS, "verify"),
        Some(1_500_000_000.0)
    );
}
