//! The prompt text of a chat, rendered from the GGUF's own Jinja chat template, as mistral.rs and
//! Hugging Face render it. llama.cpp's C function only recognises well-known template shapes and
//! drops their logic (SmolLM2's and Qwen2.5's default system prompt, for one), so the two engines
//! would otherwise feed the same model different prompts.

use minijinja::{context, Environment, Error, ErrorKind};

use crate::model::Message;

/// A model's chat template, ready to render.
pub(crate) struct ChatTemplate {
    environment: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`, with the model's BOS and EOS token texts for templates that print them.
    pub(crate) fn compile(source: &str, bos_token: String, eos_token: String) -> Result<Self, String> {
        let mut environment = Environment::new();
        // Python string methods (`.strip()`, `.startswith()`) that Hugging Face templates use.
        environment.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // The whitespace rules transformers renders chat templates with.
        environment.set_lstrip_blocks(true);
        environment.set_trim_blocks(true);
        environment.add_function("raise_exception", |message: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        environment.add_template_owned("chat", source.to_owned()).map_err(|e| e.to_string())?;
        Ok(Self { environment, bos_token, eos_token })
    }

    /// The prompt for `messages`, ending where the assistant's answer begins.
    pub(crate) fn render(&self, messages: &[Message]) -> Result<String, String> {
        let messages: Vec<_> =
            messages.iter().map(|m| context! { role => m.role.as_str(), content => m.content.as_str() }).collect();
        let template = self.environment.get_template("chat").map_err(|e| e.to_string())?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML_WITH_DEFAULT_SYSTEM: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'].strip() + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn the_templates_own_logic_runs_default_system_prompt_included() {
        let template = ChatTemplate::compile(CHATML_WITH_DEFAULT_SYSTEM, "<s>".into(), "</s>".into()).unwrap();
        let prompt = template.render(&[Message::user("  Hi  ")]).unwrap();
        assert_eq!(prompt, "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        let with_system = template.render(&[Message::system("Be brief."), Message::user("Hi")]).unwrap();
        assert!(with_system.starts_with("<|im_start|>system\nBe brief.<|im_end|>"), "{with_system}");
    }

    #[test]
    fn raise_exception_and_broken_templates_are_errors_not_panics() {
        let strict = ChatTemplate::compile("{{ raise_exception('roles must alternate') }}", String::new(), String::new()).unwrap();
        assert!(strict.render(&[Message::user("x")]).unwrap_err().contains("roles must alternate"));
        assert!(ChatTemplate::compile("{% for %}", String::new(), String::new()).is_err());
    }
}
