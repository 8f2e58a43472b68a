// An independent transcription of the IoT Edge routing engine's condition grammar
// (Azure/iotedge, edge-hub/core/src/Microsoft.Azure.Devices.Routing.Core/grammar/Condition.g4
// and GrammarLexer.g4), written from its facts for scripts/antlr_diff.py: the same tokens in the
// same priority order, and the same `expr` alternatives in the same order (ANTLR derives the
// operator precedence and the error recovery from that order, so it is part of the language).
// Rule and label names are ours; only the accept/reject decisions and where parsing stops are
// meant to be the reference's. `antlr_diff.py --upstream DIR` runs the upstream files instead.
grammar RouteCondition;

condition : expr | EOF ;

expr
    : group                                         # Grouped
    | literal                                       # Lit
    | SYS_PROP                                      # Dollar
    | ID                                            # Name
    | '{' SYS_PROP '}'                              # Braced
    | call                                          # Invoke
    | '-' expr                                      # Minus
    | NOT expr                                      # Negation
    | expr ('*' | '/' | '%') expr                   # Product
    | expr ('+' | '-' | '||') expr                  # Sum
    | expr ('<' | '<=' | '>' | '>=') expr           # Order
    | expr ('=' | '!=' | '<>') expr                 # Equal
    | expr AND expr                                 # Both
    | expr OR expr                                  # Either
    | expr '??' expr                                # Fallback
    // the reference's error alternatives: each one compiles to an error
    | stray                                         # ErrStray
    | stray expr                                    # ErrStrayPrefix
    | expr stray expr                               # ErrStrayInfix
    | group ')'                                     # ErrExtraParen
    | call ')'                                      # ErrExtraParenCall
    | '(' expr                                      # ErrMissingParen
    ;

arguments : expr (',' expr)* ;

call : ID '(' arguments? ')' ;

group : '(' expr ')' ;

literal
    : TRUE | FALSE | STRING
    | UNTERMINATED_STRING                           // an error when visited
    | INTEGER_LITERAL | HEX_INTEGER_LITERAL | REAL_LITERAL | NULL | UNDEFINED
    ;

stray : UNKNOWN_CHAR ;

// Lexer: on a tie between equally long matches the rule listed first wins.
SELECT : [Ss][Ee][Ll][Ee][Cc][Tt] ;
FROM   : [Ff][Rr][Oo][Mm] ;
WHERE  : [Ww][Hh][Ee][Rr][Ee] ;
INTO   : [Ii][Nn][Tt][Oo] ;

STRING
    : '"' (ESCAPE | ~["\\])* '"'
    | '\'' (ESCAPE | ~['\\])* '\''
    ;
UNTERMINATED_STRING
    : '"' (ESCAPE | ~["\\])*
    | '\'' (ESCAPE | ~['\\])*
    ;
fragment ESCAPE : '\\' (["'\\] | 'u' HEX HEX HEX HEX) ;
fragment HEX : [0-9a-fA-F] ;

INTEGER_LITERAL     : '-'? DIGITS ;
HEX_INTEGER_LITERAL : '0' [xX] HEX+ ;
REAL_LITERAL        : '-'? [0-9]* '.' DIGITS EXPONENT? | '-'? [0-9]* EXPONENT ;
fragment DIGITS     : [0-9]+ ;
fragment EXPONENT   : [eE] [+-]? DIGITS ;

TRUE      : 'true' ;
FALSE     : 'false' ;
NULL      : 'null' ;
UNDEFINED : 'undefined' ;

LPAREN : '(' ;
RPAREN : ')' ;
COMMA  : ',' ;
PLUS   : '+' ;
MINUS  : '-' ;
STAR   : '*' ;
SLASH  : '/' ;
PERCENT: '%' ;
AND    : [Aa][Nn][Dd] ;
OR     : [Oo][Rr] ;
NOT    : [Nn][Oo][Tt] ;
EQ     : '=' ;
NE     : '!=' ;
LTGT   : '<>' ;
LE     : '<=' ;
GE     : '>=' ;
GT     : '>' ;
LT     : '<' ;
CONCAT : '||' ;
COALESCE : '??' ;

SYS_PROP   : '$' PATH_CHAR+ ;
ID         : NAME_CHAR+ ;
QUERY_PATH : PATH_CHAR+ ;
fragment PATH_CHAR : ~[()<>@,;:\\"/?={} \t\r\n] ;
fragment NAME_CHAR : ~[()<>@,;:\\"/[\]?={} \t\r\n] ;

WS      : [ \t\r\n]+ -> skip ;
COMMENT : '/*' .*? '*/' -> channel(HIDDEN) ;

UNKNOWN_CHAR : . ;
