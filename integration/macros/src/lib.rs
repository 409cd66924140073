//! `#[root_test]`: a `#[test]` that needs root. Outside CI, when not root, it is skipped with
//! a loud line; in CI it fails. `#[root_test(isolated)]` also runs the test's body in mount
//! and network namespaces of its own (the test binary re-runs just this test there). The
//! test's name (module path and function, as the test harness filters by it) is derived, not
//! written out.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn};

/// Marks a test that needs root; `#[root_test(isolated)]` also gives it namespaces of its own.
#[proc_macro_attribute]
pub fn root_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let isolated = match attr.to_string().trim() {
        "" => false,
        "isolated" => true,
        other => {
            return syn::Error::new(
                proc_macro2::Span::call_site(),
                format!("#[root_test({other})]: use #[root_test] or #[root_test(isolated)]"),
            )
            .to_compile_error()
            .into()
        }
    };
    let f = parse_macro_input!(item as ItemFn);
    let (attrs, vis, sig, body) = (&f.attrs, &f.vis, &f.sig, &f.block);
    let name = sig.ident.to_string();
    quote! {
        #[test]
        #(#attrs)*
        #vis #sig {
            if !::integration::harness::enter(module_path!(), #name, #isolated) {
                return;
            }
            #body
        }
    }
    .into()
}
