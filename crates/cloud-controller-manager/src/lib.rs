//! cloud-controller-manager: cloud-specific control loops (local provider)
