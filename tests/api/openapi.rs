//! `/openapi.json`: valid OpenAPI 3.1, and exactly the routes the server registers, whatever is
//! switched on (the issuer, the admin API); real answers match the document's schemas.
//!
//! Validity: the document is checked against the OpenAPI Initiative's JSON Schema for 3.1
//! documents (`openapi-3.1.schema.json`, id `https://spec.openapis.org/oas/3.1/schema/2022-10-07`,
//! Apache-2.0), every schema in it against JSON Schema 2020-12, and every `$ref` resolves.
//!
//! The route table: the patterns come from actix's own resource map of the app that
//! `routes::configure_app` builds (the function startup registers its routes with), each
//! checked back through the map's public `match_pattern`; the methods of each pattern come from
//! asking the running server, without credentials, every method on it: a method is routed
//! unless the answer is the app's "no route" 404 or a 405.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use actix_web::{App, test as actix_test, web};
use orgwall::routes::admin::AdminToken;
use orgwall::routes::openapi::{Parts, document};
use orgwall::startup::AppState;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, AUDIENCE, TestApp};

const OAS_31_SCHEMA: &str = include_str!("openapi-3.1.schema.json");

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Checks `doc` as an OpenAPI 3.1 document; panics with every finding.
fn assert_valid_openapi_31(doc: &Value) {
    assert_eq!(doc["openapi"], "3.1.0");
    let meta: Value = serde_json::from_str(OAS_31_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&meta).expect("the OpenAPI 3.1 schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");

    let mut schemas = Vec::new();
    let mut refs = Vec::new();
    collect(doc, "", &mut schemas, &mut refs);
    assert!(schemas.len() > 20, "found only {} schemas", schemas.len());
    for (at, schema) in schemas {
        if let Err(e) = jsonschema::meta::validate(schema) {
            panic!("the schema at {at} is not JSON Schema 2020-12: {e}");
        }
    }
    let declared = &doc["components"]["securitySchemes"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(
                        declared[name].is_object(),
                        "{method} {path} requires the undeclared scheme {name}"
                    );
                }
            }
        }
    }
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r} is not local"));
        assert!(doc.pointer(pointer).is_some(), "{r} resolves to nothing");
    }
}

/// Every schema object (under `schema` keys and `components.schemas`) and every `$ref`.
fn collect<'a>(
    v: &'a Value,
    at: &str,
    schemas: &mut Vec<(String, &'a Value)>,
    refs: &mut Vec<String>,
) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{at}/{k}");
                if k == "$ref" {
                    refs.push(child.as_str().expect("$ref is a string").to_owned());
                } else if k == "schema" || at.ends_with("/components/schemas") {
                    schemas.push((here.clone(), child));
                }
                collect(child, &here, schemas, refs);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect(child, &format!("{at}/{i}"), schemas, refs);
            }
        }
        _ => {}
    }
}

/// `METHOD /path` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method.to_ascii_lowercase()).is_some() {
                ops.insert(format!("{method} {path}"));
            }
        }
    }
    ops
}

/// The leaf patterns of actix's resource map, read from its `Debug` form (the map has no
/// public iterator): each `ResourceMap` node's own pattern, joined to its parents' (scopes).
fn leaf_patterns(debug: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = debug.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    // (indent of the node, its full pattern)
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut leaves = BTreeSet::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if trimmed.ends_with("ResourceMap {") {
            let node = indent(line);
            // Its pattern: `pattern: ResourceDef {` .. `patterns: Single(` .. `"<pattern>",`.
            let own = lines[i..]
                .iter()
                .position(|l| l.trim() == "patterns: Single(" && indent(l) == node + 8)
                .map(|p| {
                    lines[i + p + 1]
                        .trim()
                        .trim_end_matches(',')
                        .trim_matches('"')
                })
                .unwrap_or_else(|| panic!("no single pattern for the node at line {i}"));
            while stack.last().is_some_and(|(n, _)| *n >= node) {
                stack.pop();
            }
            let full = format!("{}{own}", stack.last().map_or("", |(_, p)| p.as_str()));
            stack.push((node, full));
        } else if trimmed == "nodes: None," {
            let node = indent(line) - 4;
            let (n, full) = stack.last().expect("a leaf inside a node");
            assert_eq!(*n, node, "unexpected nesting at line {i}");
            leaves.insert(full.clone());
        }
        i += 1;
    }
    leaves
}

/// A concrete path for a pattern, with values that reach the handler.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(&rest[..start]);
        out.push_str(match &rest[start + 1..end] {
            "org_code" => "org_acme",
            "id" => "1",
            "asset" => "console.js",
            _ => "probe",
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// What a request saw of the resource map: its `Debug` form, and patterns with what
/// `match_pattern` made of a concrete path for each.
type Seen = (String, Vec<(String, Option<String>)>);

/// The route table of the app `routes::configure_app` builds for these settings: its leaf
/// patterns, each checked back through `ResourceMap::match_pattern`.
async fn registered_patterns(app: &TestApp) -> BTreeSet<String> {
    let state = AppState::build(app.settings.clone())
        .await
        .expect("app state");
    let issuer = state.issuer.clone().map(web::Data::from);
    let admin = state.settings.admin_token.clone().map(AdminToken);
    let seen: Rc<RefCell<Option<Seen>>> = Rc::default();
    let patterns_to_check: Rc<RefCell<Vec<String>>> = Rc::default();
    let (seen_in, check_in) = (seen.clone(), patterns_to_check.clone());
    let service = actix_test::init_service(
        App::new()
            .wrap_fn(move |req, srv| {
                let map = req.resource_map();
                let debug = format!("{map:#?}");
                let checked = check_in
                    .borrow()
                    .iter()
                    .map(|p| (p.clone(), map.match_pattern(&concrete(p))))
                    .collect();
                *seen_in.borrow_mut() = Some((debug, checked));
                actix_web::dev::Service::call(srv, req)
            })
            .configure(|cfg| orgwall::routes::configure_app(cfg, issuer.as_ref(), admin.as_ref())),
    )
    .await;
    let probe = || {
        actix_test::TestRequest::get()
            .uri("/no/such/path")
            .to_request()
    };
    actix_test::call_service(&service, probe()).await;
    let patterns = leaf_patterns(&seen.borrow().as_ref().expect("the map").0);
    assert!(
        patterns.contains("/health") && patterns.len() >= 6,
        "could not read actix's route table: {patterns:?}"
    );
    // The public API agrees with the reading of the Debug form.
    *patterns_to_check.borrow_mut() = patterns.iter().cloned().collect();
    actix_test::call_service(&service, probe()).await;
    for (pattern, matched) in &seen.borrow().as_ref().expect("the map").1 {
        assert_eq!(
            matched.as_deref(),
            Some(pattern.as_str()),
            "{pattern} as read from the Debug form"
        );
    }
    patterns
}

/// `METHOD /pattern` for every method the running server routes on every registered pattern.
async fn routed(app: &TestApp, patterns: &BTreeSet<String>) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for pattern in patterns {
        let url = app.url(&concrete(pattern));
        for method in METHODS {
            let res = app
                .http
                .request(method.parse().unwrap(), &url)
                .send()
                .await
                .expect("request");
            let status = res.status().as_u16();
            let no_route = status == 405
                || (status == 404
                    && (method == "HEAD"
                        || res.json::<Value>().await.ok().and_then(|b| {
                            b["message"]
                                .as_str()
                                .map(|m| m == "No route matches this path")
                        }) == Some(true)));
            if !no_route {
                ops.insert(format!("{method} {pattern}"));
            }
        }
    }
    ops
}

async fn served_document(app: &TestApp) -> Value {
    let res = app.get("/openapi.json", None).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    res.json().await.unwrap()
}

/// The document served is the one for what is switched on, valid, and lists exactly the
/// routes the server answers.
async fn assert_document_matches_routes(app: &TestApp, parts: Parts) -> BTreeSet<String> {
    let doc = served_document(app).await;
    assert_eq!(doc, serde_json::to_value(document(parts)).unwrap());
    assert_valid_openapi_31(&doc);
    let patterns = registered_patterns(app).await;
    let routed = routed(app, &patterns).await;
    let documented = documented(&doc);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "registered but not in /openapi.json: {undocumented:#?}\n\
         in /openapi.json but not registered: {unrouted:#?}"
    );
    documented
}

#[tokio::test]
async fn with_the_admin_api_the_document_lists_every_route_including_the_admin_api() {
    let app = TestApp::spawn_issuer().await;
    let ops = assert_document_matches_routes(
        &app,
        Parts {
            issuer: true,
            admin: true,
        },
    )
    .await;
    for op in [
        "GET /health",
        "POST /oauth2/token",
        "GET /.well-known/jwks.json",
        "POST /admin/apps",
        "GET /console",
    ] {
        assert!(ops.contains(op), "{op}");
    }
}

#[tokio::test]
async fn without_admin_token_the_document_has_no_admin_route() {
    let app = TestApp::spawn_issuer_with(|vars| {
        vars.remove("admin_token");
    })
    .await;
    let ops = assert_document_matches_routes(
        &app,
        Parts {
            issuer: true,
            admin: false,
        },
    )
    .await;
    assert!(ops.contains("POST /oauth2/token"));
    assert!(!ops.iter().any(|op| op.contains("/admin")), "{ops:#?}");
    assert!(!ops.iter().any(|op| op.contains("/console")), "{ops:#?}");
    let doc = served_document(&app).await;
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_null());
}

#[tokio::test]
async fn with_an_external_issuer_the_document_is_the_resource_api_alone() {
    let app = TestApp::spawn().await;
    let ops = assert_document_matches_routes(
        &app,
        Parts {
            issuer: false,
            admin: false,
        },
    )
    .await;
    assert!(ops.contains("GET /orgs/{org_code}/data"));
    assert!(!ops.iter().any(|op| op.contains("oauth2")), "{ops:#?}");
}

#[test]
fn a_route_missing_from_the_document_is_found() {
    // The comparison itself: a table with one route more than the document is a failure.
    let doc = serde_json::to_value(document(Parts {
        issuer: true,
        admin: true,
    }))
    .unwrap();
    let mut routes = documented(&doc);
    assert!(routes.len() > 25);
    routes.insert("POST /admin/something-new".into());
    assert_ne!(routes, documented(&doc));
    let debug = "ResourceMap {\n    pattern: ResourceDef {\n        id: 0,\n        patterns: Single(\n            \"\",\n        ),\n    },\n    nodes: Some(\n        [\n            ResourceMap {\n                pattern: ResourceDef {\n                    id: 0,\n                    patterns: Single(\n                        \"/admin\",\n                    ),\n                },\n                nodes: Some(\n                    [\n                        ResourceMap {\n                            pattern: ResourceDef {\n                                id: 0,\n                                patterns: Single(\n                                    \"/apis\",\n                                ),\n                            },\n                            nodes: None,\n                        },\n                    ],\n                ),\n            },\n            ResourceMap {\n                pattern: ResourceDef {\n                    id: 1,\n                    patterns: Single(\n                        \"/health\",\n                    ),\n                },\n                nodes: None,\n            },\n        ],\n    ),\n}";
    assert_eq!(
        leaf_patterns(debug),
        BTreeSet::from(["/admin/apis".to_string(), "/health".to_string()])
    );
}

/// A response schema of the document, as a validator (its `$ref`s resolve inside the document).
fn response_validator(doc: &Value, path: &str, method: &str, status: u16) -> jsonschema::Validator {
    let responses = &doc["paths"][path][method]["responses"];
    let mut response = &responses[status.to_string()];
    if let Some(r) = response["$ref"].as_str() {
        response = doc.pointer(&r[1..]).expect("response ref");
    }
    let schema = response["content"]["application/json"]["schema"].clone();
    assert!(
        !schema.is_null(),
        "{method} {path} documents no JSON body for {status}"
    );
    let mut root = schema;
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), doc["components"].clone());
    }
    jsonschema::validator_for(&root).expect("the response schema compiles")
}

async fn assert_conforms(
    doc: &Value,
    path: &str,
    method: &str,
    res: reqwest::Response,
) -> (u16, Value) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("a JSON body");
    let validator = response_validator(doc, path, method, status);
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} answered {status} {body} against the document: {errors:#?}"
    );
    (status, body)
}

#[tokio::test]
async fn real_answers_match_the_documented_schemas() {
    let app = TestApp::spawn_issuer().await;
    let doc = served_document(&app).await;
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(ADMIN_TOKEN);

    // The catalogue through the admin API, every answer checked.
    let res = admin(app.http.post(app.url("/admin/apis")))
        .json(&json!({"audience": AUDIENCE, "name": "Data", "scopes": [
            {"name": "read:data"}, {"name": "write:data"}, {"name": "read:users"},
            {"name": "read:audit"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_conforms(&doc, "/admin/apis", "post", res).await.0,
        201
    );
    let res = admin(app.http.post(app.url("/admin/orgs")))
        .json(&json!({"code": "org_acme", "name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_conforms(&doc, "/admin/orgs", "post", res).await.0,
        201
    );
    let res = admin(app.http.post(app.url("/admin/orgs")))
        .json(&json!({"code": "org_acme", "name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_conforms(&doc, "/admin/orgs", "post", res).await.0,
        409
    );
    let res = admin(app.http.post(app.url("/admin/apps")))
        .json(&json!({"name": "Acme client", "org_code": "org_acme"}))
        .send()
        .await
        .unwrap();
    let (_, created) = assert_conforms(&doc, "/admin/apps", "post", res).await;
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let res = admin(
        app.http
            .post(app.url(&format!("/admin/apps/{client_id}/authorize"))),
    )
    .json(&json!({"audience": AUDIENCE, "scopes": "read:data write:data read:users read:audit"}))
    .send()
    .await
    .unwrap();
    assert_conforms(&doc, "/admin/apps/{client_id}/authorize", "post", res).await;
    let res = admin(app.http.post(app.url("/admin/orgs/org_acme/users")))
        .json(&json!({"email": "ada@acme.test", "name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_conforms(&doc, "/admin/orgs/{org_code}/users", "post", res).await;
    for path in ["/admin/apis", "/admin/orgs", "/admin/apps", "/admin/keys"] {
        let res = admin(app.http.get(app.url(path))).send().await.unwrap();
        assert_eq!(assert_conforms(&doc, path, "get", res).await.0, 200);
    }
    let res = app.http.get(app.url("/admin/apps")).send().await.unwrap();
    assert_eq!(
        assert_conforms(&doc, "/admin/apps", "get", res).await.0,
        401
    );

    // The issuer.
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
        "/.well-known/jwks",
    ] {
        let res = app.get(path, None).await;
        assert_eq!(assert_conforms(&doc, path, "get", res).await.0, 200);
    }
    let token_request = |form: &[(&str, &str)]| {
        app.http
            .post(app.url("/oauth2/token"))
            .form(&form.to_vec())
            .send()
    };
    let res = token_request(&[("grant_type", "client_credentials")])
        .await
        .unwrap();
    assert_eq!(
        assert_conforms(&doc, "/oauth2/token", "post", res).await.0,
        401
    );
    let res = token_request(&[("grant_type", "password")]).await.unwrap();
    assert_eq!(
        assert_conforms(&doc, "/oauth2/token", "post", res).await.0,
        400
    );
    let res = token_request(&[
        ("grant_type", "client_credentials"),
        ("client_id", &client_id),
        ("client_secret", &secret),
        ("audience", AUDIENCE),
    ])
    .await
    .unwrap();
    let (status, issued) = assert_conforms(&doc, "/oauth2/token", "post", res).await;
    assert_eq!(status, 200);
    let token = issued["access_token"].as_str().unwrap().to_owned();

    // The resource API.
    let data = "/orgs/{org_code}/data";
    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&token),
            &json!({"name": "A", "value": {"n": [1, 2.5, null]}}),
        )
        .await;
    assert!(res.headers().contains_key("location"));
    assert_eq!(assert_conforms(&doc, data, "post", res).await.0, 201);
    let res = app.get("/orgs/org_acme/data?limit=10", Some(&token)).await;
    assert_eq!(assert_conforms(&doc, data, "get", res).await.0, 200);
    let res = app.get("/orgs/org_acme/data?limit=0", Some(&token)).await;
    assert_eq!(assert_conforms(&doc, data, "get", res).await.0, 400);
    let res = app.get("/orgs/org_beta/data", Some(&token)).await;
    assert_eq!(assert_conforms(&doc, data, "get", res).await.0, 403);
    let res = app.get("/orgs/org_acme/data", None).await;
    assert_eq!(assert_conforms(&doc, data, "get", res).await.0, 401);
    let one = "/orgs/{org_code}/data/{id}";
    let res = app.get("/orgs/org_acme/data/1", Some(&token)).await;
    assert_eq!(assert_conforms(&doc, one, "get", res).await.0, 200);
    let res = app.get("/orgs/org_acme/data/99", Some(&token)).await;
    assert_eq!(assert_conforms(&doc, one, "get", res).await.0, 404);
    let res = app
        .http
        .patch(app.url("/orgs/org_acme/data/1"))
        .bearer_auth(&token)
        .json(&json!({"value": "changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_conforms(&doc, one, "patch", res).await.0, 200);
    let res = app
        .http
        .delete(app.url("/orgs/org_acme/data/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(assert_conforms(&doc, one, "delete", res).await.0, 403);
    let res = app.get("/orgs/org_acme/users", Some(&token)).await;
    assert_eq!(
        assert_conforms(&doc, "/orgs/{org_code}/users", "get", res)
            .await
            .0,
        200
    );
    let res = app.get("/orgs/org_acme/audit?limit=5", Some(&token)).await;
    let (status, events) = assert_conforms(&doc, "/orgs/{org_code}/audit", "get", res).await;
    assert_eq!(status, 200);
    assert!(events["total"].as_i64().unwrap() >= 2, "{events}");
    for path in ["/health", "/ready"] {
        let res = app.get(path, None).await;
        assert_eq!(assert_conforms(&doc, path, "get", res).await.0, 200);
    }
}

#[test]
fn the_security_schemes_and_error_bodies_are_declared() {
    let doc = serde_json::to_value(document(Parts {
        issuer: true,
        admin: true,
    }))
    .unwrap();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer_jwt"]["scheme"], "bearer");
    assert_eq!(schemes["bearer_jwt"]["bearerFormat"], "JWT");
    assert_eq!(schemes["client_secret_basic"]["scheme"], "basic");
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    let schemas = &doc["components"]["schemas"];
    let required = |name: &str| -> BTreeSet<String> {
        serde_json::from_value(schemas[name]["required"].clone()).unwrap()
    };
    assert_eq!(
        required("ErrorBody"),
        BTreeSet::from(["error".into(), "message".into()])
    );
    assert_eq!(
        required("OAuthError"),
        BTreeSet::from(["error".into(), "error_description".into()])
    );
    let responses = &doc["components"]["responses"];
    assert!(responses["Unauthorized"]["headers"]["WWW-Authenticate"].is_object());
    assert!(responses["SlowDown"]["headers"]["Retry-After"].is_object());
    let token = &doc["paths"]["/oauth2/token"]["post"];
    assert!(token["responses"]["200"]["headers"]["Cache-Control"].is_object());
    assert!(token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    let created = &doc["paths"]["/orgs/{org_code}/data"]["post"]["responses"]["201"];
    assert!(created["headers"]["Location"].is_object());
    // Every operation of the resource API names its scope.
    let scopes: BTreeMap<String, Value> = ["get", "post"]
        .iter()
        .map(|m| {
            (
                m.to_string(),
                doc["paths"]["/orgs/{org_code}/data"][*m]["security"].clone(),
            )
        })
        .collect();
    assert_eq!(
        scopes["get"],
        json!([{"bearer_jwt": ["read:data"]}, {"dpop": ["read:data"]}])
    );
    assert_eq!(
        scopes["post"],
        json!([{"bearer_jwt": ["write:data"]}, {"dpop": ["write:data"]}])
    );
    assert_eq!(schemes["dpop"]["type"], "http");
    assert_eq!(schemes["dpop"]["scheme"], "DPoP");
    let form = &token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    let form = &schemas[form["$ref"].as_str().unwrap().rsplit('/').next().unwrap()];
    for field in [
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    ] {
        assert!(form["properties"][field].is_object(), "{field}");
    }
}

/// Found by schemathesis: jsonb writes a number in plain notation (1.7976931348623157e308 as
/// 309 digits), and without exact float parsing the stored record read back as "number out of
/// range": a 500 on create and on every list after it.
#[tokio::test]
async fn a_number_near_the_float_limit_is_stored_and_read_back() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "read:data write:data");
    let res = app
        .http
        .post(app.url("/orgs/org_acme/data"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"name": "huge", "value": [1.7976931348623157e308, 5e-324]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app.get("/orgs/org_acme/data", Some(&token)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["records"][0]["value"],
        json!([1.7976931348623157e308, 5e-324])
    );
}

/// The test above runs with the test-only dependencies, and one of them (jsonschema) switches
/// on serde_json's exact float parsing for the whole test build: it would pass even if the
/// service itself lacked it. So the service's own dependency must ask for it (and the
/// schemathesis run, which builds the binary alone, stores and reads such a number first).
#[test]
fn the_service_itself_parses_floats_exactly() {
    let manifest = include_str!("../../Cargo.toml");
    let dependencies = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    let serde_json = dependencies
        .lines()
        .find(|l| l.starts_with("serde_json "))
        .expect("serde_json is a dependency");
    assert!(serde_json.contains("\"float_roundtrip\""), "{serde_json}");
}

/// Found by schemathesis: a NUL character in a path segment or a body field of the admin API
/// reached PostgreSQL (which cannot store it in text) and the answer was a 500.
#[tokio::test]
async fn nul_characters_in_admin_input_are_the_clients_mistake() {
    let app = TestApp::spawn_issuer().await;
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(ADMIN_TOKEN);
    for path in [
        "/admin/apps/%00x/disable",
        "/admin/apps/a%00/enable",
        "/admin/apps/%00/rotate-secret",
    ] {
        let res = admin(app.http.post(app.url(path))).send().await.unwrap();
        assert_eq!(res.status(), 400, "{path}");
    }
    let res = admin(app.http.delete(app.url("/admin/apps/%00")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = admin(app.http.post(app.url("/admin/apps")))
        .json(&json!({"name": "An app"}))
        .send()
        .await
        .unwrap();
    let created: Value = res.json().await.unwrap();
    let authorize = format!(
        "/admin/apps/{}/authorize",
        created["client_id"].as_str().unwrap()
    );
    for (path, body) in [
        (
            "/admin/apis/scopes",
            json!({"audience": "a\u{0}", "name": "x"}),
        ),
        (
            authorize.as_str(),
            json!({"audience": "a\u{0}", "scopes": "x"}),
        ),
    ] {
        let res = admin(app.http.post(app.url(path)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "Bad Request", "{path}");
    }
    let res = admin(app.http.post(app.url("/admin/apps/x/token")))
        .json(&json!({"audience": "a\u{0}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}
