# %% [markdown]
# Hello.

# %%
def add(a, b):
    """Add."""
    # BEGIN SOLUTION
    # HINT: use +
    return a + b
    # END SOLUTION

# %% instructor
# %% [markdown] instructor
# ⏱ 5 min
