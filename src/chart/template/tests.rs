//! The template subset, feature by feature, against what Go's text/template and Sprig print.

use serde_json::{Value, json};

use super::*;

fn render(src: &str, data: &Value) -> String {
    render_str("t.yaml", src, data).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn refused(src: &str, data: &Value) -> TemplateError {
    render_str("t.yaml", src, data).expect_err(src)
}

#[test]
fn text_actions_and_trim_markers() {
    let data = json!({"name": "web", "n": 3});
    assert_eq!(render("hello {{ .name }}!", &data), "hello web!");
    assert_eq!(render("a  \n  {{- .n }}  \n b", &data), "a3  \n b");
    assert_eq!(render("a {{ .n -}}  \n\n b", &data), "a 3b");
    assert_eq!(render("x{{/* a comment */}}y", &data), "xy");
    assert_eq!(render("x \n{{- /* trimmed comment */ -}}\n y", &data), "xy");
    // `{{-3}}` is the number -3, not a trim marker.
    assert_eq!(render("a {{-3}}", &data), "a -3");
    assert_eq!(render("{{ .missing }}|", &data), "|", "a missing value prints nothing");
}

#[test]
fn pipelines_variables_and_parentheses() {
    let data = json!({"a": "x", "list": [1, 2], "m": {"k": {"deep": "v"}}});
    assert_eq!(render(r#"{{ .a | printf "%s-%s" "p" }}"#, &data), "p-x");
    assert_eq!(render("{{ $v := .m.k }}{{ $v.deep }}", &data), "v");
    assert_eq!(render("{{ $v := 1 }}{{ $v = 2 }}{{ $v }}", &data), "2");
    assert_eq!(render("{{ (index .list 1) }}", &data), "2");
    assert_eq!(render("{{ (.m).k.deep }}", &data), "v");
    assert_eq!(render(r#"{{ printf "%s %s" .a .a }}"#, &data), "x x");
    // `$x .a` is two arguments, `$x.a` one.
    assert_eq!(render(r#"{{ $p := "q" }}{{ printf "%s/%s" $p .a }}"#, &data), "q/x");
    assert_eq!(render(r#"{{ with .m }}{{ $.a }}{{ .k.deep }}{{ end }}"#, &data), "xv");
    let err = refused("{{ $nope }}", &data);
    assert!(err.message.contains("undefined variable: $nope"), "{err}");
}

#[test]
fn if_else_if_else_with_and_truthiness() {
    let src = "{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}";
    assert_eq!(render(src, &json!({"a": 1})), "A");
    assert_eq!(render(src, &json!({"a": 0, "b": "yes"})), "B");
    for falsy in [json!(null), json!(false), json!(0), json!(""), json!([]), json!({}), json!(0.0)]
    {
        assert_eq!(render(src, &json!({"a": falsy, "b": falsy})), "C", "{falsy}");
    }
    let with = "{{ with .m }}[{{ .k }}]{{ else with .n }}<{{ . }}>{{ else }}none{{ end }}";
    assert_eq!(render(with, &json!({"m": {"k": 1}})), "[1]");
    assert_eq!(render(with, &json!({"n": "z"})), "<z>");
    assert_eq!(render(with, &json!({})), "none");
    assert_eq!(render("{{ if $x := .a }}{{ $x }}{{ end }}", &json!({"a": "v"})), "v");
}

#[test]
fn range_over_lists_and_maps_in_key_order() {
    let data = json!({"l": ["a", "b", "c"], "m": {"z": 1, "a": 2}, "e": []});
    assert_eq!(render("{{ range .l }}{{ . }},{{ end }}", &data), "a,b,c,");
    assert_eq!(
        render("{{ range $i, $v := .l }}{{ $i }}={{ $v }} {{ end }}", &data),
        "0=a 1=b 2=c "
    );
    assert_eq!(render("{{ range $k, $v := .m }}{{ $k }}:{{ $v }};{{ end }}", &data), "a:2;z:1;");
    assert_eq!(render("{{ range .e }}x{{ else }}empty{{ end }}", &data), "empty");
    assert_eq!(render("{{ range .missing }}x{{ end }}.", &data), ".");
    assert_eq!(
        render(
            "{{ range .l }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ if eq . \"c\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
            &data
        ),
        "a"
    );
    assert_eq!(render("{{ range $v := .l }}{{ $.m.a }}{{ end }}", &data), "222");
    let err = refused("{{ range .x }}{{ end }}", &json!({"x": "text"}));
    assert!(err.message.contains("can't iterate over text"), "{err}");
}

#[test]
fn define_template_include_and_block() {
    let src = r#"{{- define "app.name" -}}{{ .name | trunc 5 }}{{- end -}}
{{ template "app.name" . }}|{{ include "app.name" . | upper }}|{{ block "extra" . }}default{{ end }}"#;
    assert_eq!(render(src, &json!({"name": "webserver"})), "webse|WEBSE|default");
    let mut templates = Templates::new();
    templates.add("chart/templates/_helpers.tpl", r#"{{ define "x" }}X{{ .n }}{{ end }}"#).unwrap();
    templates.add("chart/templates/cm.yaml", r#"v: {{ include "x" (dict "n" 7) }}"#).unwrap();
    assert_eq!(templates.render("chart/templates/cm.yaml", &json!({})).unwrap(), "v: X7");
    let err = refused(r#"{{ include "nope" . }}"#, &json!({}));
    assert!(err.message.contains("no template \"nope\""), "{err}");
    let err = refused(
        r#"{{ define "loop" }}{{ include "loop" . }}{{ end }}{{ include "loop" . }}"#,
        &json!({}),
    );
    assert!(err.message.contains("nests deeper"), "{err}");
    let err = refused(
        r#"{{ define "big" }}{{ range until 5000 }}0123456789abcdef{{ end }}{{ end }}{{ define "bigger" }}{{ range until 1000 }}{{ include "big" . }}{{ end }}{{ end }}{{ include "bigger" . }}"#,
        &json!({}),
    );
    assert!(err.message.contains("renders more than 64 MiB"), "{err}");
}

#[test]
fn field_chains_refuse_nil_and_non_maps_as_go_does() {
    let err = refused("{{ .Values.a.b }}", &json!({"Values": {}}));
    assert_eq!(err.message, "nil pointer evaluating interface {}.b");
    assert_eq!(err.line, 1);
    let err = refused("line1\n{{ .s.x }}", &json!({"s": "str"}));
    assert_eq!((err.line, err.message.as_str()), (2, "can't evaluate field x in type string"));
}

#[test]
fn unknown_functions_are_refused_at_parse_naming_file_line_and_function() {
    let err = refused("ok\n\n{{ randAlphaNum 10 }}", &json!({}));
    assert_eq!(err.file, "t.yaml");
    assert_eq!(err.line, 3);
    assert!(err.message.contains("function \"randAlphaNum\" is not supported"), "{err}");
    assert!(err.to_string().starts_with("t.yaml:3: function \"randAlphaNum\""), "{err}");
    // Even in a branch that would not run: refused before rendering.
    let err = refused("{{ if false }}{{ now | date \"2006\" }}{{ end }}", &json!({}));
    assert!(err.message.contains("\"now\""), "{err}");
    let err = refused("{{ .Files.Glob \"*.txt\" }}", &json!({"Files": files_object("")}));
    assert!(err.message.contains("\".Files.Glob\" is not supported"), "{err}");
    for bad in ["{{ if .a }}x", "{{ end }}", "{{ .a ", "{{ \"unclosed }}", "{{ else }}"] {
        assert!(render_str("t.yaml", bad, &json!({})).is_err(), "{bad}");
    }
}

#[test]
fn go_builtins() {
    let d = json!({"n": 3, "s": "abc", "l": [1, 2], "m": {"a": {"b": 5}}, "f": 1.5});
    assert_eq!(
        render("{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" 3 }} {{ or 0 false }}", &d),
        "0 2 3 false"
    );
    assert_eq!(render("{{ not 0 }} {{ not .s }}", &d), "true false");
    assert_eq!(
        render("{{ eq .n 3 }} {{ eq .s \"x\" \"abc\" }} {{ ne .n 4 }} {{ eq .f 1.5 }}", &d),
        "true true true true"
    );
    assert_eq!(
        render("{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1 2 }}", &d),
        "true true true false"
    );
    assert_eq!(render("{{ len .s }} {{ len .l }} {{ len .m }}", &d), "3 2 1");
    assert_eq!(render("{{ index .m \"a\" \"b\" }} {{ index .l 0 }}", &d), "5 1");
    assert_eq!(render("{{ print \"a\" 1 2 \"b\" }}|{{ println 1 \"x\" }}", &d), "a1 2b|1 x\n");
    assert_eq!(
        render("{{ .l }} {{ .m }} {{ .f }} {{ true }}", &d),
        "[1 2] map[a:map[b:5]] 1.5 true"
    );
    let err = refused("{{ lt 1 \"a\" }}", &d);
    assert!(err.message.contains("incompatible types"), "{err}");
    // `and` stops before an argument that would fail.
    assert_eq!(render("{{ and .missing .missing.deeper }}", &json!({})), "");
}

#[test]
fn printf_verbs_as_go_prints_them() {
    let d = json!({});
    assert_eq!(
        render(r#"{{ printf "%s|%d|%v|%q" "a" 42 true "x\"y" }}"#, &d),
        "a|42|true|\"x\\\"y\""
    );
    assert_eq!(
        render(r#"{{ printf "%05d|%-4s|%3d|%.2f|%x|%%" 42 "ab" 7 3.14159 255 }}"#, &d),
        "00042|ab  |  7|3.14|ff|%"
    );
    assert_eq!(render(r#"{{ printf "%v %v" (list 1 "a") (dict "k" 1) }}"#, &d), "[1 a] map[k:1]");
    assert_eq!(render(r#"{{ printf "%s %s" "only" }}"#, &d), "only %!s(MISSING)");
    assert_eq!(render(r#"{{ printf "%d" "x" }}"#, &d), "%!d(x)");
    assert_eq!(render("{{ 1000000.0 }} {{ 0.00001 }} {{ 123456.5 }}", &d), "1e+06 1e-05 123456.5");
}

#[test]
fn sprig_defaults_strings_and_encoding() {
    let d = json!({"empty": "", "name": "my-app-", "tag": "v1", "zero": 0});
    assert_eq!(
        render(
            r#"{{ .empty | default "d" }} {{ .tag | default "d" }} {{ default "x" .zero }}"#,
            &d
        ),
        "d v1 x"
    );
    assert_eq!(
        render(r#"{{ empty .empty }} {{ empty .tag }} {{ coalesce .empty .zero "c" }}"#, &d),
        "true false c"
    );
    assert_eq!(
        render(r#"{{ ternary "yes" "no" true }} {{ true | ternary "y" "n" }}"#, &d),
        "yes y"
    );
    assert_eq!(
        render(r#"{{ .tag | quote }} {{ squote .tag }} {{ quote 1 "a" }}"#, &d),
        "\"v1\" 'v1' \"1\" \"a\""
    );
    assert_eq!(
        render(r#"{{ "a\nb" | indent 2 }}|{{ "a\nb" | nindent 2 }}"#, &d),
        "  a\n  b|\n  a\n  b"
    );
    assert_eq!(
        render(r#"{{ trim "  x " }}|{{ .name | trimSuffix "-" }}|{{ trimPrefix "v" .tag }}"#, &d),
        "x|my-app|1"
    );
    assert_eq!(
        render(r#"{{ trunc 3 "abcdef" }} {{ trunc -2 "abcdef" }} {{ trunc 10 "ab" }}"#, &d),
        "abc ef ab"
    );
    assert_eq!(
        render(r#"{{ upper "ab" }} {{ lower "AB" }} {{ title "hello big world" }}"#, &d),
        "AB ab Hello Big World"
    );
    assert_eq!(
        render(
            r#"{{ "1.0+build" | replace "+" "_" }} {{ contains "app" .name }} {{ hasPrefix "my" .name }} {{ hasSuffix "-" .name }}"#,
            &d
        ),
        "1.0_build true true true"
    );
    assert_eq!(render(r#"{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }}"#, &d), "aGVsbG8= hello");
    assert_eq!(
        render(r#"{{ sha256sum "abc" }}"#, &d),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        render(
            r##"{{ regexMatch "^v[0-9]+$" .tag }} {{ regexReplaceAll "[0-9]" "a1b2" "#" }}"##,
            &d
        ),
        "true a#b#"
    );
    assert_eq!(
        render(r#"{{ toString 12 }} {{ typeOf (toString 1) }} {{ join "," (list 1 "b") }}"#, &d),
        "12 string 1,b"
    );
    assert_eq!(
        render(
            r#"{{ splitList "," "a,b" | last }} {{ substr 1 3 "abcd" }} {{ repeat 2 "ab" }}"#,
            &d
        ),
        "b bc abab"
    );
}

#[test]
fn sprig_lists_dicts_and_their_changes() {
    let d = json!({"m": {"a": 1, "n": {"x": 1}}});
    assert_eq!(
        render(
            r#"{{ $d := dict "b" 2 "a" 1 }}{{ keys $d | sortAlpha }} {{ get $d "a" }} {{ get $d "z" }}|"#,
            &d
        ),
        "[a b] 1 |"
    );
    assert_eq!(render(r#"{{ hasKey .m "a" }} {{ hasKey .m "z" }}"#, &d), "true false");
    // set changes the map it is given, as in Go.
    assert_eq!(render(r#"{{ $d := dict }}{{ $_ := set $d "k" "v" }}{{ $d.k }}"#, &d), "v");
    assert_eq!(render(r#"{{ $_ := set .m "b" 2 }}{{ .m.b }}{{ $.m.b }}"#, &d), "22");
    assert_eq!(render(r#"{{ $_ := unset .m "a" }}{{ hasKey .m "a" }}"#, &d), "false");
    assert_eq!(
        render(
            r#"{{ $dst := dict "a" 0 "n" (dict "y" 2) }}{{ $_ := merge $dst .m }}{{ toJson $dst }}"#,
            &d
        ),
        r#"{"a":0,"n":{"x":1,"y":2}}"#
    );
    assert_eq!(
        render(r#"{{ toJson (mergeOverwrite (dict "a" 0) .m) }}"#, &d),
        r#"{"a":1,"n":{"x":1}}"#
    );
    assert_eq!(
        render(
            r#"{{ list 1 2 | first }} {{ append (list 1) 2 }} {{ has 2 (list 1 2) }} {{ uniq (list 1 1 2) }}"#,
            &d
        ),
        "1 [1 2] true [1 2]"
    );
    assert_eq!(render(r#"{{ dig "n" "x" 0 .m }} {{ dig "n" "q" "none" .m }}"#, &d), "1 none");
    assert_eq!(
        render(r#"{{ pick .m "a" | toJson }} {{ omit .m "a" | toJson }}"#, &d),
        r#"{"a":1} {"n":{"x":1}}"#
    );
}

#[test]
fn yaml_json_and_types() {
    let d = json!({"r": {"limits": {"cpu": "100m"}, "list": ["a", {"k": "v", "j": 1}], "t": "true", "e": {}}});
    assert_eq!(
        render("{{ toYaml .r }}", &d),
        "e: {}\nlimits:\n  cpu: 100m\nlist:\n- a\n- j: 1\n  k: v\nt: 'true'"
    );
    assert_eq!(render("{{ toYaml .r.limits | nindent 4 }}", &d), "\n    cpu: 100m");
    assert_eq!(render(r#"{{ (fromYaml "a: 1\nb: [x]").b }}"#, &d), "[x]");
    assert!(render(r#"{{ (fromYaml "a: [").Error }}"#, &d).len() > 3);
    assert_eq!(render(r#"{{ toJson .r.limits }}"#, &d), r#"{"cpu":"100m"}"#);
    assert_eq!(
        render(
            r#"{{ typeOf 1 }} {{ typeOf 1.5 }} {{ typeOf "s" }} {{ typeOf .r }} {{ typeOf .r.list }} {{ typeOf nil }}"#,
            &d
        ),
        "int float64 string map[string]interface {} []interface {} <nil>"
    );
    assert_eq!(
        render(r#"{{ kindIs "map" .r }} {{ kindIs "slice" .r.list }} {{ kindIs "string" 1 }}"#, &d),
        "true true false"
    );
    assert_eq!(
        render(
            r#"{{ int "12" }} {{ int64 3.9 }} {{ add 1 2 3 }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 5 }}"#,
            &d
        ),
        "12 3 6 3 6 3 1 5"
    );
}

#[test]
fn semver_compare_as_masterminds_does() {
    let cases = [
        (">=1.21-0", "v1.36.0", true),
        (">=1.21-0", "1.20.4", false),
        (">=1.19-0, <1.30-0", "v1.25.3+k3s1", true),
        ("<1.22", "1.21.9", true),
        ("^1.2", "1.9.0", true),
        ("~1.2", "1.3.0", false),
        ("<1.0 || >=2.0", "2.1.0", true),
        (">=1.21", "1.36.0-rc.1", false),
    ];
    for (constraint, version, expected) in cases {
        let out =
            render(&format!("{{{{ semverCompare {constraint:?} {version:?} }}}}"), &json!({}));
        assert_eq!(out, expected.to_string(), "{constraint} {version}");
    }
}

#[test]
fn helm_functions_required_fail_tpl_lookup_and_files() {
    let d = json!({"Values": {"host": "example.com", "tpl": "{{ .Values.host | upper }}"}, "Files": files_object("")});
    let err = refused(r#"{{ required "image.tag is required" .Values.tag }}"#, &d);
    assert_eq!(err.message, "execution error: image.tag is required");
    let err = refused(r#"{{ fail "unsupported mode" }}"#, &d);
    assert_eq!(err.message, "execution error: unsupported mode");
    assert_eq!(render(r#"{{ tpl .Values.tpl . }}"#, &d), "EXAMPLE.COM");
    assert_eq!(render(r#"{{ lookup "v1" "Secret" "ns" "x" | len }}"#, &d), "0");
    let mut templates = Templates::new();
    let mut files = std::collections::BTreeMap::new();
    files.insert("config/app.conf".to_string(), "port=80\n".to_string());
    templates.set_chart_files(files);
    templates.add("c.yaml", r#"{{ .Files.Get "config/app.conf" | trim }}|{{ .Files.Get "none" }}|{{ .Capabilities.APIVersions.Has "apps/v1" }}"#).unwrap();
    let data = json!({"Files": files_object(""), "Capabilities": {"APIVersions": api_versions_object(&["apps/v1".into()])}});
    assert_eq!(templates.render("c.yaml", &data).unwrap(), "port=80||true");
}

/// The helpers and the Deployment of a chart as `helm create` lays one out, rendered whole.
#[test]
fn a_helm_create_style_chart_renders() {
    let helpers = r#"{{/*
Expand the name of the chart.
*/}}
{{- define "web.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "web.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "web.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "web.labels" -}}
helm.sh/chart: {{ include "web.chart" . }}
{{ include "web.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "web.selectorLabels" -}}
app.kubernetes.io/name: {{ include "web.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
"#;
    let deployment = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "web.fullname" . }}
  labels:
    {{- include "web.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "web.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      {{- with .Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      labels:
        {{- include "web.selectorLabels" . | nindent 8 }}
    spec:
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
"#;
    let mut templates = Templates::new();
    templates.add("web/templates/_helpers.tpl", helpers).unwrap();
    templates.add("web/templates/deployment.yaml", deployment).unwrap();
    let data = json!({
        "Chart": {"Name": "web", "Version": "0.1.0+abc", "AppVersion": "1.16.0"},
        "Release": {"Name": "demo", "Namespace": "default", "Service": "Helm"},
        "Values": {"replicaCount": 2, "image": {"repository": "busybox", "tag": ""},
                   "autoscaling": {"enabled": false}, "podAnnotations": {},
                   "resources": {"limits": {"cpu": "100m"}}},
    });
    let out = templates.render("web/templates/deployment.yaml", &data).unwrap();
    let expected = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo-web
  labels:
    helm.sh/chart: web-0.1.0_abc
    app.kubernetes.io/name: web
    app.kubernetes.io/instance: demo
    app.kubernetes.io/version: "1.16.0"
    app.kubernetes.io/managed-by: Helm
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: web
      app.kubernetes.io/instance: demo
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
        app.kubernetes.io/instance: demo
    spec:
      containers:
        - name: web
          image: "busybox:1.16.0"
          resources:
            limits:
              cpu: 100m
"#;
    assert_eq!(out, expected);
}

#[test]
fn more_sprig_and_go_functions() {
    let d = json!({"l": [1, 2, 3, 4], "m": {"a": 1}});
    assert_eq!(render(r#"{{ slice .l 1 3 }} {{ slice "abcdef" 2 }}"#, &d), "[2 3] cdef");
    assert_eq!(
        render("{{ until 3 }} {{ untilStep 10 0 -4 }} {{ range until 2 }}{{ . }}{{ end }}", &d),
        "[0 1 2] [10 6 2] 01"
    );
    assert_eq!(render(r#"{{ (split "." "a.b.c")._1 }} {{ trimAll "-" "--x--" }}"#, &d), "b x");
    assert_eq!(
        render(
            r#"{{ snakecase "FirstName lastName" }} {{ kebabcase "httpServer2Go" }} {{ camelcase "http_server" }}"#,
            &d
        ),
        "first_name_last_name http-server2-go HttpServer"
    );
    assert_eq!(
        render(r#"{{ regexFind "[0-9]+" "ab12cd34" }} {{ atoi "42" }} {{ add1 (atoi "x") }}"#, &d),
        "12 42 1"
    );
    assert_eq!(
        render(
            r#"{{ base "/a/b.tar.gz" }} {{ dir "/a/b.tar.gz" }} {{ ext "b.tar.gz" }} {{ dir "x" }}"#,
            &d
        ),
        "b.tar.gz /a .gz ."
    );
    assert_eq!(
        render(r#"{{ toPrettyJson .m }}|{{ toRawJson .m }}|{{ mustToJson .m }}"#, &d),
        "{\n  \"a\": 1\n}|{\"a\":1}|{\"a\":1}"
    );
    assert_eq!(
        render(r#"{{ fromYamlArray "- a\n- b" | last }} {{ fromJsonArray "[1]" | first }}"#, &d),
        "b 1"
    );
    assert_eq!(
        render(
            r#"{{ $d := dict "a" 0 }}{{ $_ := mustMerge $d (dict "b" 1) }}{{ toJson $d }} {{ mustRegexMatch "^a" "ab" }}"#,
            &d
        ),
        r#"{"a":0,"b":1} true"#
    );
    let err = refused("{{ slice .l 3 9 }}", &d);
    assert!(err.message.contains("index out of range"), "{err}");
}

/// docs/provisioning.md lists the functions exactly: the list there is the list here.
#[test]
fn the_documented_functions_are_the_supported_ones() {
    let doc = include_str!("../../../docs/provisioning.md");
    let start = doc.find("Functions, exactly these:").expect("the documented list");
    let end = start + doc[start..].find("Anything else").expect("its end");
    let mut documented: Vec<&str> = doc[start..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric()) && *w != "Error")
        .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect();
    documented.sort_unstable();
    documented.dedup();
    let mut supported = SUPPORTED.to_vec();
    supported.sort_unstable();
    assert_eq!(documented, supported);
}
