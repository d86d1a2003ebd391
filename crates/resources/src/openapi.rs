//! OpenAPI v2/v3 documents built from the registrations and api-schemas/.
