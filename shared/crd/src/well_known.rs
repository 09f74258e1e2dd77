//! ESO's well-known names: labels, annotations, finalizers, condition reasons, Event reasons and
//! the messages that go with them. Tools written for ESO (Argo CD health checks, dashboards,
//! `kubectl` habits) look for these exact strings.

/// The API group of every kind.
pub const GROUP: &str = "external-secrets.io";

/// Label on the CRDs themselves.
pub const LABEL_COMPONENT: &str = "external-secrets.io/component";
/// Value of [`LABEL_COMPONENT`].
pub const LABEL_COMPONENT_VALUE: &str = "controller";

/// Annotation on a managed Secret: sha3-224 (hex) of its data.
pub const ANNOTATION_DATA_HASH: &str = "reconcile.external-secrets.io/data-hash";

/// Label on every managed Secret, with value [`LABEL_MANAGED_VALUE`].
pub const LABEL_MANAGED: &str = "reconcile.external-secrets.io/managed";
/// Value of [`LABEL_MANAGED`].
pub const LABEL_MANAGED_VALUE: &str = "true";

/// Label on a Secret created with `creationPolicy: Owner`: sha3-224 of `<namespace>/<name>` of
/// the owning ExternalSecret.
pub const LABEL_OWNER: &str = "reconcile.external-secrets.io/created-by";

/// Annotation on a ClusterExternalSecret, copied to its ExternalSecrets to force a sync.
pub const ANNOTATION_FORCE_SYNC: &str = "external-secrets.io/force-sync";

/// Annotation on a store that silences the unmaintained/deprecated provider Events.
pub const ANNOTATION_IGNORE_MAINTENANCE_CHECKS: &str =
    "external-secrets.io/ignore-maintenance-checks";

/// Finalizer on every ExternalSecret.
pub const FINALIZER_EXTERNAL_SECRET: &str =
    "externalsecrets.external-secrets.io/externalsecret-cleanup";

/// Finalizer on every ClusterExternalSecret.
pub const FINALIZER_CLUSTER_EXTERNAL_SECRET: &str =
    "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup";

/// Prefix of the finalizer a ClusterExternalSecret puts on each namespace it writes to; see
/// [`ces_namespace_finalizer`].
pub const NAMESPACE_FINALIZER_PREFIX: &str = "externalsecrets.external-secrets.io/ces-";

/// Finalizer on a PushSecret with `deletionPolicy: Delete`.
pub const FINALIZER_PUSH_SECRET: &str = "pushsecret.externalsecrets.io/finalizer";

/// Finalizer on a store that PushSecrets with `deletionPolicy: Delete` push to.
pub const FINALIZER_SECRET_STORE: &str = "secretstore.externalsecrets.io/finalizer";

/// Prefix of the field manager an ExternalSecret writes its Secret with: the prefix followed by
/// the ExternalSecret's name, or by [`FIELD_MANAGER_SHA3_PREFIX`] and sha3-224 of the name when
/// the result would exceed 63 characters.
pub const FIELD_MANAGER_PREFIX: &str = "externalsecrets.external-secrets.io/";
/// Field manager prefix for names too long for [`FIELD_MANAGER_PREFIX`].
pub const FIELD_MANAGER_SHA3_PREFIX: &str = "externalsecrets.external-secrets.io/sha3/";

/// The namespace finalizer of the ClusterExternalSecret `ces_name`.
pub fn ces_namespace_finalizer(ces_name: &str) -> String {
    format!("{NAMESPACE_FINALIZER_PREFIX}{ces_name}")
}

/// Condition types.
pub mod condition {
    /// The condition every kind reports.
    pub const READY: &str = "Ready";
    /// ExternalSecret only; ESO sets it in memory when the object is gone.
    pub const DELETED: &str = "Deleted";
}

/// Reasons of `Ready` conditions.
pub mod reason {
    /// ExternalSecret: the Secret is in sync (status True).
    pub const SECRET_SYNCED: &str = "SecretSynced";
    /// ExternalSecret: syncing failed (status False).
    pub const SECRET_SYNCED_ERROR: &str = "SecretSyncedError";
    /// ExternalSecret: the Secret was deleted by `deletionPolicy: Delete` (status True).
    pub const SECRET_DELETED: &str = "SecretDeleted";
    /// ExternalSecret: `creationPolicy: Merge` and the Secret does not exist (status True).
    pub const SECRET_MISSING: &str = "SecretMissing";
    /// ExternalSecret with a `manifest` target: as [`SECRET_SYNCED`].
    pub const RESOURCE_SYNCED: &str = "ResourceSynced";
    /// ExternalSecret with a `manifest` target: as [`SECRET_SYNCED_ERROR`].
    pub const RESOURCE_SYNCED_ERROR: &str = "ResourceSyncedError";
    /// ExternalSecret with a `manifest` target: as [`SECRET_DELETED`].
    pub const RESOURCE_DELETED: &str = "ResourceDeleted";
    /// ExternalSecret with a `manifest` target: as [`SECRET_MISSING`].
    pub const RESOURCE_MISSING: &str = "ResourceMissing";

    /// Store: validated (status True).
    pub const STORE_VALID: &str = "Valid";
    /// Store: no client could be built or validation failed (status False).
    pub const STORE_INVALID_PROVIDER_CONFIG: &str = "InvalidProviderConfig";
    /// Store: validation could not decide (status True).
    pub const STORE_VALIDATION_UNKNOWN: &str = "ValidationUnknown";
    /// Store: invalid configuration.
    pub const STORE_INVALID_STORE_CONFIGURATION: &str = "InvalidStoreConfiguration";
    /// Store: validation failed.
    pub const STORE_VALIDATION_FAILED: &str = "ValidationFailed";

    /// PushSecret: pushed (status True).
    pub const PUSH_SYNCED: &str = "Synced";
    /// PushSecret: pushing failed (status False).
    pub const PUSH_ERRORED: &str = "Errored";
    /// PushSecret: the source Secret was deleted (status False).
    pub const PUSH_SOURCE_DELETED: &str = "SourceDeleted";
}

/// Reasons of Kubernetes Events.
pub mod event_reason {
    /// Warning: a sync failed; the message is the error.
    pub const UPDATE_FAILED: &str = "UpdateFailed";
    /// Warning: a deprecated field is in use.
    pub const PARAMETER_DEPRECATED: &str = "ParameterDeprecated";
    /// Normal: the Secret was created.
    pub const CREATED: &str = "Created";
    /// Normal: the Secret was updated.
    pub const UPDATED: &str = "Updated";
    /// Normal: the Secret was deleted.
    pub const DELETED: &str = "Deleted";
    /// Normal: a provider secret does not exist and the entry was skipped.
    pub const MISSING_PROVIDER_SECRET: &str = "MissingProviderSecret";
    /// Warning on a store: its provider is unmaintained.
    pub const STORE_UNMAINTAINED: &str = "StoreUnmaintained";
    /// Warning on a store: its provider is deprecated.
    pub const STORE_DEPRECATED: &str = "StoreDeprecated";
}

/// Condition and Event messages ESO uses, for the same situations.
pub mod message {
    /// ExternalSecret Ready=True, `SecretSynced`.
    pub const SECRET_SYNCED: &str = "secret synced";
    /// ExternalSecret Ready=True, `SecretSynced`, provider values gone under `Retain`.
    pub const SECRET_RETAINED: &str = "secret retained due to DeletionPolicy=Retain";
    /// ExternalSecret Ready=True, `SecretDeleted`.
    pub const SECRET_DELETED: &str = "secret deleted due to DeletionPolicy=Delete";
    /// ExternalSecret Ready=True, `SecretMissing`.
    pub const SECRET_MISSING: &str = "secret will not be created due to CreationPolicy=Merge";
    /// ExternalSecret Ready=False: reading the provider failed.
    pub const ERR_GET_SECRET_DATA: &str = "could not get secret data from provider";
    /// ExternalSecret Ready=False: writing the Secret failed.
    pub const ERR_UPDATE_SECRET: &str = "could not update secret";
    /// ExternalSecret Ready=False: deleting the Secret failed.
    pub const ERR_DELETE_SECRET: &str = "could not delete secret";
    /// ExternalSecret Ready=False: deleting Secrets left behind by a rename failed.
    pub const ERR_DELETE_ORPHANED_SECRETS: &str = "could not delete orphaned secrets";
    /// ExternalSecret Ready=False: the Secret is immutable and its data would change.
    pub const ERR_SECRET_IMMUTABLE: &str = "could not update secret, target is immutable";
    /// ExternalSecret Ready=False: the owner reference could not be set.
    pub const ERR_TAKE_OWNERSHIP: &str = "failed to take ownership of target secret";
    /// ExternalSecret Ready=False: another ExternalSecret controls the Secret.
    pub const ERR_SECRET_IS_OWNED: &str = "target is owned by another ExternalSecret";
    /// Event `Created`.
    pub const EVENT_SECRET_CREATED: &str = "secret created";
    /// Event `Updated`.
    pub const EVENT_SECRET_UPDATED: &str = "secret updated";
    /// Event `Deleted` after a target rename.
    pub const EVENT_SECRET_ORPHAN_DELETED: &str = "secret deleted because it was orphaned";

    /// Store Ready=True, `Valid`.
    pub const STORE_VALIDATED: &str = "store validated";
    /// Store Ready=False, `InvalidProviderConfig`: no client.
    pub const STORE_ERR_CREATE_CLIENT: &str = "unable to create client";
    /// Store Ready=False, `InvalidProviderConfig`: validation failed.
    pub const STORE_ERR_VALIDATE: &str = "unable to validate store";
    /// Store Ready=True, `ValidationUnknown`.
    pub const STORE_VALIDATION_UNKNOWN: &str = "could not determine validation status";

    /// ClusterExternalSecret Ready=False.
    pub const CES_NAMESPACES_FAILED: &str = "one or more namespaces failed";

    /// PushSecret Ready=True.
    pub const PUSH_SYNCED: &str = "PushSecret synced successfully";
    /// Appended to [`PUSH_SYNCED`] with `updatePolicy: IfNotExists`.
    pub const PUSH_SYNCED_IF_NOT_EXISTS_SUFFIX: &str = ". Existing secrets in providers unchanged.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_finalizer_names_the_cluster_external_secret() {
        assert_eq!(
            ces_namespace_finalizer("shared-tls"),
            "externalsecrets.external-secrets.io/ces-shared-tls"
        );
    }
}
