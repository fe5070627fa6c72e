"""Asset factories, one module per stage; each builds the same stage for any feed."""
