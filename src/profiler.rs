//! `cpuprof start` / `cpuprof stop`: a sampling CPU profile of the process,
//! written in pprof's protobuf format (readable by `go tool pprof`).
//! Built with the default `cpuprof` feature; without it the commands say so.

/// The profiler's state between `start` and `stop`.
#[derive(Default)]
pub struct Profiler {
    #[cfg(feature = "cpuprof")]
    guard: Option<pprof::ProfilerGuard<'static>>,
}

/// Samples per second.
#[cfg(feature = "cpuprof")]
const FREQUENCY: i32 = 199;

impl Profiler {
    /// Starts sampling, unless already started.
    pub fn start(&mut self) {
        #[cfg(feature = "cpuprof")]
        {
            if self.guard.is_some() {
                log::info!("cpuprof start: already running");
                return;
            }
            match pprof::ProfilerGuardBuilder::default()
                .frequency(FREQUENCY)
                .build()
            {
                Ok(g) => {
                    self.guard = Some(g);
                    log::info!("cpuprof started ({FREQUENCY} samples/s)");
                }
                Err(e) => log::warn!("cpuprof start failed: {e}"),
            }
        }
        #[cfg(not(feature = "cpuprof"))]
        log::warn!("cpuprof: this build has no profiler (built without the cpuprof feature)");
    }

    /// Stops sampling and writes the profile to `path`.
    pub fn stop(&mut self, path: &str) {
        #[cfg(feature = "cpuprof")]
        {
            use pprof::protos::Message;
            let Some(guard) = self.guard.take() else {
                log::info!("cpuprof stop: not running");
                return;
            };
            let result = guard
                .report()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|r| r.pprof().map_err(|e| e.to_string()))
                .and_then(|p| p.write_to_bytes().map_err(|e| e.to_string()))
                .and_then(|bytes| std::fs::write(path, bytes).map_err(|e| e.to_string()));
            match result {
                Ok(()) => log::info!("cpuprof stopped, profile written to {path}"),
                Err(e) => log::warn!("cpuprof stop: cannot write {path}: {e}"),
            }
        }
        #[cfg(not(feature = "cpuprof"))]
        {
            let _ = path;
            log::warn!("cpuprof: this build has no profiler (built without the cpuprof feature)");
        }
    }
}
