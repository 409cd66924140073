//! `flynn route`: the app's HTTP and TCP routes.

use controller_api::{Certificate, HttpRoute, Route, TcpRoute};

use crate::cli::{RouteAdd, RouteCommand};
use crate::error::CliError;
use crate::Ctx;

/// `DOMAIN[/PATH]` as a domain and a path prefix ending in `/`.
pub fn split_target(target: &str) -> Result<(String, String), CliError> {
    let (domain, path) = match target.split_once('/') {
        Some((d, p)) => (d, format!("/{p}")),
        None => (target, "/".to_string()),
    };
    if domain.is_empty() {
        return Err(CliError::usage(format!(
            "{target:?}: name a domain, like example.com/path"
        )));
    }
    let path = if path.ends_with('/') {
        path
    } else {
        format!("{path}/")
    };
    Ok((domain.to_ascii_lowercase(), path))
}

fn kind_id(r: &Route) -> String {
    match r {
        Route::Http(h) => format!("http/{}", h.id),
        Route::Tcp(t) => format!("tcp/{}", t.id),
    }
}

/// Runs `flynn route [COMMAND]`.
pub async fn run(ctx: &Ctx, command: Option<RouteCommand>, json: bool) -> Result<(), CliError> {
    let app = ctx.app()?;
    let api = ctx.api()?;
    let default_service = format!("{app}-web");
    match command {
        None => {
            let routes = api.app_routes(&app).await?;
            if json {
                super::print_json(&routes);
                return Ok(());
            }
            let yes = |b: bool| if b { "true" } else { "false" }.to_string();
            let rows: Vec<Vec<String>> = routes
                .iter()
                .map(|r| match r {
                    Route::Http(h) => vec![
                        format!("http:{}", h.domain),
                        h.service.clone(),
                        kind_id(r),
                        yes(h.sticky),
                        yes(h.leader),
                        h.path.clone(),
                    ],
                    Route::Tcp(t) => vec![
                        format!("tcp:{}", t.port),
                        t.service.clone(),
                        kind_id(r),
                        "false".into(),
                        yes(t.leader),
                        String::new(),
                    ],
                })
                .collect();
            flynn_term::table::print(
                &["ROUTE", "SERVICE", "ID", "STICKY", "LEADER", "PATH"],
                &rows,
            );
        }
        Some(RouteCommand::Add { kind }) => {
            let route = match kind {
                RouteAdd::Http {
                    service,
                    tls_cert,
                    key,
                    sticky,
                    leader,
                    no_drain_backends,
                    disable_keep_alives,
                    target,
                } => {
                    let (domain, path) = split_target(&target)?;
                    let mut h = HttpRoute::new("", domain, service.unwrap_or(default_service));
                    h.path = path;
                    h.sticky = sticky;
                    h.leader = leader;
                    h.drain_backends = !no_drain_backends;
                    h.disable_keep_alives = disable_keep_alives;
                    if let (Some(c), Some(k)) = (tls_cert, key) {
                        h.certificate = Some(Certificate {
                            cert: std::fs::read_to_string(&c)?,
                            key: std::fs::read_to_string(&k)?,
                        });
                    }
                    Route::Http(h)
                }
                RouteAdd::Tcp {
                    service,
                    port,
                    leader,
                    no_drain_backends,
                } => Route::Tcp(TcpRoute {
                    id: String::new(),
                    parent_ref: None,
                    service: service.unwrap_or(default_service),
                    port,
                    leader,
                    drain_backends: !no_drain_backends,
                    send_proxy_protocol: false,
                }),
            };
            let r = api.create_route(&app, &route).await?;
            match &r {
                Route::Tcp(t) => println!("{} listening on port {}", kind_id(&r), t.port),
                Route::Http(_) => println!("{}", kind_id(&r)),
            }
        }
        Some(RouteCommand::Update {
            id,
            service,
            sticky,
            leader,
            drain_backends,
            disable_keep_alives,
        }) => {
            let Some(("http", rid)) = id.split_once('/') else {
                return Err(CliError::usage(format!(
                    "{id:?}: name an HTTP route as http/ID (flynn route lists them)"
                )));
            };
            let Route::Http(mut h) = api.route(&app, "http", rid).await? else {
                return Err(CliError::usage(format!("{id} is not an HTTP route")));
            };
            if let Some(s) = service {
                h.service = s;
            }
            h.sticky = sticky.unwrap_or(h.sticky);
            h.leader = leader.unwrap_or(h.leader);
            h.drain_backends = drain_backends.unwrap_or(h.drain_backends);
            h.disable_keep_alives = disable_keep_alives.unwrap_or(h.disable_keep_alives);
            api.update_route(&app, &Route::Http(h)).await?;
            println!("Route {id} updated.");
        }
        Some(RouteCommand::Remove { id }) => {
            let Some((kind, id)) = id
                .split_once('/')
                .filter(|(k, _)| *k == "http" || *k == "tcp")
            else {
                return Err(CliError::usage(format!(
                    "{id:?}: name the route as http/ID or tcp/ID (flynn route lists them)"
                )));
            };
            api.delete_route(&app, kind, id).await?;
            println!("Route {kind}/{id} removed.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            split_target("Ex.com").unwrap(),
            ("ex.com".into(), "/".into())
        );
        assert_eq!(
            split_target("ex.com/api").unwrap(),
            ("ex.com".into(), "/api/".into())
        );
        assert_eq!(
            split_target("ex.com/api/").unwrap(),
            ("ex.com".into(), "/api/".into())
        );
        assert!(split_target("/x").is_err());
    }
}
