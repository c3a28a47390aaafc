//! The writes: create, update, patch (JSON, merge, strategic merge) and server-side apply,
//! with the metadata rules (names, uid, generation, resourceVersion preconditions, managed
//! fields) and admission; an update is computed outside the store's lock and retried when the
//! object changed meanwhile.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::kinds::{Kind, NAMESPACES};
use super::resources::ResourceType;
use super::routing::{Request, json_response, parse_body};
use super::store::{Write, Written};
use super::{fieldset, ownership, validation};
use crate::admission::{FieldError, FieldErrorReason, UnknownFieldPolicy};

/// Why a computed write could not be stored: the object changed, or went, meanwhile.
enum Stale {
    Changed,
    Gone,
}

impl Request<'_> {
    /// What kube-apiserver does to an object before it stores it: the kind's decoding, unknown
    /// fields pruned (or refused, or warned about, as `fieldValidation` says), the built-in
    /// kinds' validation, and a custom resource's defaults, schema and CEL rules. Returns the
    /// object to store and the warnings for the client.
    fn admit(
        &self,
        mut object: Value,
        old: Option<&Value>,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Kind::of(self.resource)
            .decode(&mut object)
            .map_err(ApiError::bad_request)?;
        let policy = UnknownFieldPolicy::from_query(self.query.field_validation.as_deref());
        // Fields no schema declares: of metadata for every kind, at the top for the built-ins
        // whose fields are known here, everywhere for custom resources (their validator).
        let mut unknown = validation::prune_unknown_builtin_fields(
            &mut object,
            &self.resource.kind,
            self.resource.validator.is_some(),
        );
        let mut errors = validation::builtin(
            &self.resource.kind,
            self.resource.group.is_empty(),
            &object,
            old,
        );
        if !errors.is_empty() {
            return Err(ApiError::invalid(self.resource, &name, &errors));
        }
        let mut warnings = vec![];
        if let Some(validator) = &self.resource.validator {
            match validator.admit(object, old, policy) {
                Ok(admitted) => {
                    object = admitted.object;
                    warnings = admitted.warnings;
                }
                Err(found) => {
                    if !found
                        .iter()
                        .all(|e| e.reason == FieldErrorReason::UnknownField)
                    {
                        return Err(ApiError::invalid(self.resource, &name, &found));
                    }
                    errors = found;
                    object = Value::Null;
                }
            }
        }
        unknown.extend(errors.into_iter().map(|e| e.field));
        match policy {
            UnknownFieldPolicy::Strict if !unknown.is_empty() => {
                unknown.sort();
                let fields: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect();
                Err(ApiError::bad_request(format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                    fields.join(", "),
                    kind = self.resource.kind,
                    version = self.resource.version,
                )))
            }
            UnknownFieldPolicy::Warn => {
                let mut all: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect();
                all.extend(warnings);
                all.sort();
                all.dedup();
                Ok((object, all))
            }
            _ => Ok((object, warnings)),
        }
    }

    pub(super) fn check_type(&self, object: &Value) -> Result<(), ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        if (!api_version.is_empty() && api_version != self.resource.api_version())
            || (!kind.is_empty() && kind != self.resource.kind)
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                self.resource.api_version()
            )));
        }
        Ok(())
    }

    /// Custom resources are decoded as unstructured objects, which must name their type.
    fn check_custom_type_given(&self, object: &Value) -> Result<(), ApiError> {
        if self.resource.validator.is_none() {
            return Ok(());
        }
        for (field, what) in [("kind", "Kind"), ("apiVersion", "Version")] {
            if object[field].as_str().is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!(
                    "Object '{what}' is missing in '{object}'"
                )));
            }
        }
        Ok(())
    }

    pub(super) fn create(&self, body: &[u8], content_type: &str) -> ApiResult {
        let mut object = parse_body(body, content_type)?;
        self.check_type(&object)?;
        if object["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
        {
            // kube-apiserver's storage refuses it, as an internal error.
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        self.check_custom_type_given(&object)?;
        object["apiVersion"] = json!(self.resource.api_version());
        object["kind"] = json!(self.resource.kind);
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let metadata = &mut object["metadata"];
        if metadata["name"].as_str().is_none_or(str::is_empty)
            && let Some(prefix) = metadata["generateName"].as_str()
        {
            let suffix: String = (0..5)
                .map(|_| (b'a' + rand::random_range(0..26u8)) as char)
                .collect();
            metadata["name"] = json!(format!("{prefix}{suffix}"));
        }
        // What the server sets on every write is owned by the writer, as on kube-apiserver.
        Kind::of(self.resource).prepare(&mut object);
        self.create_object(object, true)
    }

    /// What kube-apiserver checks of any object's metadata besides its name.
    fn metadata_errors(&self, object: &Value) -> Vec<FieldError> {
        let metadata = &object["metadata"];
        let mut errors = validation::labels_and_annotations(metadata);
        errors.extend(validation::finalizers(
            metadata,
            self.resource.validator.is_none(),
        ));
        errors.extend(validation::owner_references(metadata));
        errors
    }

    /// The namespace a new object goes in: the request's, which must exist and not be
    /// terminating, and which the object may name only as it is; none for a cluster-scoped one.
    fn place(&self, object: &mut Value, name: &str) -> Result<String, ApiError> {
        if !self.resource.namespaced {
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("namespace");
            }
            return Ok(String::new());
        }
        let namespace = self.namespace().to_string();
        if let Some(body_ns) = object["metadata"]["namespace"].as_str()
            && !body_ns.is_empty()
            && body_ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        match self.state.store.get(NAMESPACES, "", &namespace) {
            None => return Err(ApiError::namespace_not_found(&namespace)),
            Some(ns) if !ns["metadata"]["deletionTimestamp"].is_null() => {
                return Err(ApiError::namespace_terminating(
                    self.resource,
                    name,
                    &namespace,
                ));
            }
            Some(_) => {}
        }
        object["metadata"]["namespace"] = json!(namespace);
        Ok(namespace)
    }

    /// Creates `object`; with `record_creator`, its writer owns what it set (defaults included,
    /// as kube-apiserver defaults a custom resource when it decodes it).
    pub(super) fn create_object(&self, mut object: Value, record_creator: bool) -> ApiResult {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = Kind::of(self.resource);
        let mut errors = validation::name(&name, kind.name_rule());
        if kind == Kind::CustomResourceDefinition && !errors.is_empty() {
            // kube-apiserver tells both what is wrong with the name and what it must be.
            errors.extend(validation::crd_name(&object));
        }
        errors.extend(self.metadata_errors(&object));
        if !errors.is_empty() {
            return Err(ApiError::invalid(self.resource, &name, &errors));
        }
        let namespace = self.place(&mut object, &name)?;
        if self.resource.status_subresource {
            // As kube-apiserver's create strategies: a new object's status is the server's.
            match kind.status_on_create() {
                Some(status) => object["status"] = status,
                None => {
                    object.as_object_mut().expect("object").remove("status");
                }
            }
        }
        let (mut object, warnings) = self.admit(object, None)?;
        if record_creator {
            let (manager, api_version, now) =
                (self.manager(), self.resource.api_version(), self.now());
            let entries = self
                .writer(&manager, &api_version, &now)
                .update(None, &object);
            set_managed_fields(&mut object, entries);
        }
        let metadata = object["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        metadata.insert("creationTimestamp".into(), json!(self.now()));
        metadata.remove("deletionTimestamp");
        metadata.remove("resourceVersion");
        if self.resource.has_generation {
            metadata.insert("generation".into(), json!(1));
        }
        kind.initialize(&mut object);
        if kind.defines_resources() {
            self.register_crd(&mut object)?;
        }
        if self.query.dry_run {
            return Ok(json_response(StatusCode::CREATED, &object, &warnings));
        }
        let resource = self.resource;
        let written = self
            .state
            .store
            .write(&self.key(), &namespace, &name, |current| {
                if current.is_some() {
                    return Err(ApiError::already_exists(resource, &name));
                }
                Ok(Write::Put(object))
            })?;
        super::gc::written(self.state, self.resource, written.object());
        Ok(json_response(
            StatusCode::CREATED,
            written.object(),
            &warnings,
        ))
    }

    /// Registers the resources of a CRD and marks it Established, as the real server does once
    /// it serves them.
    pub(super) fn register_crd(&self, object: &mut Value) -> Result<(), ApiError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(object.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let errors = schema_errors(object);
        if !errors.is_empty() {
            return Err(ApiError::invalid(self.resource, &name, &errors));
        }
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let resource = ResourceType::from_crd(&crd, &version.name).map_err(|e| {
                ApiError::invalid(
                    self.resource,
                    &name,
                    &[FieldError {
                        field: "spec.versions".into(),
                        reason: FieldErrorReason::Invalid,
                        message: format!("spec.versions: Invalid value: {e}"),
                    }],
                )
            })?;
            if !self.query.dry_run {
                self.state.store.serve(&resource.key());
                self.state.registry.insert(resource);
            }
        }
        let now = self.now();
        object["status"] = json!({
            "acceptedNames": crd.spec.names,
            "storedVersions": crd.spec.versions.iter().filter(|v| v.storage).map(|v| v.name.clone()).collect::<Vec<_>>(),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        });
        Ok(())
    }

    /// Updates an existing object: `change` computes the new object from the current one. Applies
    /// the subresource rules, the resourceVersion precondition, admission, generation, and
    /// removal of an object being deleted whose finalizers are gone.
    ///
    /// As kube-apiserver's guaranteed update: the new object is computed and admitted (schema,
    /// CEL) outside the store's lock, then stored only if the object did not change meanwhile;
    /// if it did, the whole computation runs again on the newer object. Admission is the
    /// costly part of a write, and under the lock it would serialise every write to every
    /// resource.
    pub(super) fn write_existing(
        &self,
        change: impl Fn(&Value) -> Result<Value, ApiError>,
        expected_version: Option<String>,
    ) -> ApiResult {
        let name = self.name().to_string();
        loop {
            let current = self
                .state
                .store
                .get(&self.key(), self.namespace(), &name)
                .ok_or_else(|| ApiError::not_found(self.resource, &name))?;
            if let Some(expected) = &expected_version
                && current["metadata"]["resourceVersion"].as_str() != Some(expected.as_str())
            {
                return Err(ApiError::conflict(self.resource, &name));
            }
            let (write, warnings) = self.next_version(&current, &change)?;
            if self.query.dry_run {
                let object = match &write {
                    Write::Put(object) => object,
                    _ => &*current,
                };
                return Ok(json_response(StatusCode::OK, object, &warnings));
            }
            let seen_version = current["metadata"]["resourceVersion"].clone();
            let written = self
                .state
                .store
                .write(&self.key(), self.namespace(), &name, |now| match now {
                    None => Err(Stale::Gone),
                    Some(now) if now["metadata"]["resourceVersion"] != seen_version => {
                        Err(Stale::Changed)
                    }
                    Some(_) => Ok(write),
                });
            let written = match written {
                Ok(written) => written,
                Err(Stale::Changed) => continue,
                Err(Stale::Gone) => return Err(ApiError::not_found(self.resource, &name)),
            };
            match &written {
                Written::Deleted(object) => self.after_removal(object),
                Written::Stored(object) if Kind::of(self.resource).defines_resources() => {
                    // An updated CRD takes effect at once: new schema, printer columns, versions.
                    let mut object = (**object).clone();
                    let _ = self.register_crd(&mut object);
                }
                Written::Stored(object) => super::gc::written(self.state, self.resource, object),
                Written::Unchanged(_) => {}
            }
            return Ok(json_response(StatusCode::OK, written.object(), &warnings));
        }
    }

    /// `object` with what a write may not change taken from `current`: the server's own
    /// fields, and the status or everything but it (as the write goes to `/status` or not).
    fn what_the_write_may_change(
        &self,
        current: &Value,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let (resource, name) = (self.resource, self.name());
        object["apiVersion"] = current["apiVersion"].clone();
        object["kind"] = current["kind"].clone();
        // Fields the server owns.
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "namespace",
            "name",
            "generation",
        ] {
            match current["metadata"].get(field) {
                Some(v) => object["metadata"][field] = v.clone(),
                None => {
                    if let Some(meta) = object["metadata"].as_object_mut() {
                        meta.remove(field);
                    }
                }
            }
        }
        match self.target.subresource.as_deref() {
            Some("status") => {
                // Only the status (and who manages it) changes through /status; for some
                // kinds the metadata too, as their registries' status strategies allow.
                let status = object.get("status").cloned();
                let managed = object["metadata"].get("managedFields").cloned();
                let metadata = object["metadata"].clone();
                object = current.clone();
                if Kind::of(resource).status_writes_metadata() {
                    object["metadata"] = metadata;
                }
                if let Some(managed) = managed {
                    object["metadata"]["managedFields"] = managed;
                }
                match status {
                    Some(status) => object["status"] = status,
                    None => {
                        object.as_object_mut().expect("object").remove("status");
                    }
                }
            }
            Some(other) => {
                return Err(ApiError::not_found(resource, &format!("{name}/{other}")));
            }
            None if resource.status_subresource => match current.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => {
                    object.as_object_mut().expect("object").remove("status");
                }
            },
            None => {}
        }
        Ok(object)
    }

    /// What `change` makes of `current`, admitted: the write to make, and admission's warnings.
    fn next_version(
        &self,
        current: &Value,
        change: &impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<(Write, Vec<String>), ApiError> {
        let resource = self.resource;
        let name = self.name();
        let object = change(current)?;
        let mut object = self.what_the_write_may_change(current, object)?;
        Kind::of(resource).prepare(&mut object);
        if !self.apply {
            let (manager, api_version, now) = (self.manager(), resource.api_version(), self.now());
            let entries = self
                .writer(&manager, &api_version, &now)
                .update(Some(current), &object);
            set_managed_fields(&mut object, entries);
        }
        let mut errors = self.metadata_errors(&object);
        errors.extend(validation::finalizers_while_deleting(current, &object));
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource, name, &errors));
        }
        let (mut object, warnings) = self.admit(object, Some(current))?;
        if resource.has_generation && spec_of(&object) != spec_of(current) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        object["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        let deleting = !object["metadata"]["deletionTimestamp"].is_null();
        let finalizers_empty = object["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        // A Namespace goes once it is empty (the namespace controller's part), not on an update.
        let write = if deleting && finalizers_empty && !Kind::of(resource).terminates() {
            Write::Delete
        } else if object == *current {
            Write::Unchanged
        } else {
            Write::Put(object)
        };
        Ok((write, warnings))
    }
}

impl Request<'_> {
    /// Who writes through this request, for `managedFields`.
    pub(super) fn writer<'a>(
        &'a self,
        manager: &'a str,
        api_version: &'a str,
        now: &'a str,
    ) -> ownership::Writer<'a> {
        ownership::Writer {
            manager,
            api_version,
            time: now,
            subresource: self.target.subresource.as_deref(),
            status_subresource: self.resource.status_subresource,
            shapes: match &self.resource.validator {
                Some(validator) => fieldset::Shapes::Custom(validator),
                None => fieldset::Shapes::Builtin,
            },
        }
    }
}

fn set_managed_fields(object: &mut Value, entries: Value) {
    if entries.as_array().is_some_and(Vec::is_empty) {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        object["metadata"]["managedFields"] = entries;
    }
}

/// What `metadata.generation` counts: everything but metadata and status.
fn spec_of(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    object
}

/// What kube-apiserver refuses in a CRD's schemas, each error naming the field as it does: its
/// internal form keeps one schema for all versions when they share it
/// (`spec.validation.openAPIV3Schema`), else one per version.
fn schema_errors(crd: &Value) -> Vec<FieldError> {
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let schema = |v: &Value| v["schema"]["openAPIV3Schema"].clone();
    let shared = versions.windows(2).all(|w| schema(&w[0]) == schema(&w[1]));
    if shared {
        return versions
            .first()
            .map(|v| {
                crate::admission::schema_checks::check(
                    &schema(v),
                    "spec.validation.openAPIV3Schema",
                )
            })
            .unwrap_or_default();
    }
    versions
        .iter()
        .enumerate()
        .flat_map(|(i, v)| {
            crate::admission::schema_checks::check(
                &schema(v),
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
            )
        })
        .collect()
}
